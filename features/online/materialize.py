"""Materialisation: a snapshot's feature vectors into the online store, as a new live version.

Ray Data reads the snapshot; each block is written by a task with its own Redis connection as
pipelined MSETs of packed vectors. Only when the server confirmed every row (and a random sample
reads back) does the live pointer flip; otherwise the new version is dropped and the live one is
untouched.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa
import ray

from core.schema import CUSTOMER_ID
from core.settings import Settings
from features.feature_set import feature_matrix
from features.online.interface import OnlineVersion
from features.online.redis_writer import RedisOnlineStore
from features.snapshot import open_snapshot


@dataclass(frozen=True)
class MaterializeResult:
    version: OnlineVersion
    previous: str | None
    rows: int
    seconds: float
    """From the start of the load until the new version is live."""
    removed: list[str]
    cleanup_seconds: float
    """Removing the versions older than the previous one, after the flip (SCAN + UNLINK in small
    steps, so serving reads are never held up)."""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else math.inf


def _write_batch(batch: pa.Table, *, settings: Settings, version: str, names: list[str],
                 sample_share: float) -> dict[str, list]:
    """Ray Data UDF: write one batch; return its row count and a few of its ids to verify."""
    ids = batch.column(CUSTOMER_ID).to_pylist()
    written = RedisOnlineStore(settings).put_many(version, ids, feature_matrix(batch, names))
    sample = random.sample(ids, min(len(ids), math.ceil(sample_share * len(ids))))
    return {"rows": [written], "sample": [sample]}


def materialize(settings: Settings, snapshot_ref: str = "latest") -> MaterializeResult:
    """Load every customer of a snapshot into a new online version and make it live."""
    snapshot = open_snapshot(settings, snapshot_ref)
    features = snapshot.feature_set
    store = RedisOnlineStore(settings)
    before = store.live()
    started = time.perf_counter()
    version = store.begin(features, source=snapshot.id)
    try:
        expected = int(snapshot.manifest["rows"])
        cfg = settings.online
        writers = cfg.writers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # One block per writer, read and written by the same (fused) task: no re-batching, and
        # Ray Data's per-task overhead paid once per writer.
        written = snapshot.read(override_num_blocks=writers).select_columns([CUSTOMER_ID, *features.names]) \
            .map_batches(cast("Callable[[Any], Any]", _write_batch), batch_size=None, batch_format="pyarrow",
                         fn_kwargs={"settings": settings, "version": version.id, "names": features.names,
                                        "sample_share": cfg.verify_sample / max(expected, 1)}) \
            .take_all()
        sample = [i for row in written for i in row["sample"]]
        live = store.flip(version.id, expected_rows=expected, sample_ids=sample)
    except BaseException:
        store.abort(version.id)
        raise
    live_at = time.perf_counter()
    removed = store.prune_old_versions()
    return MaterializeResult(live, before.id if before else None, expected, live_at - started, removed,
                             time.perf_counter() - live_at)


def rollback(settings: Settings) -> OnlineVersion:
    return RedisOnlineStore(settings).rollback()
