"""Materialize step: a snapshot's feature vectors into the online store, as a new live version.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.materialize --snapshot latest``

Ray Data reads the snapshot; each batch is written by a task with its own Redis connection as
pipelined MSETs of packed vectors. Only when the server confirmed every row (and a random sample
reads back) does the live pointer flip; otherwise the new version is dropped and the live one is
untouched. ``--rollback`` makes the previous version live again.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Optional

import pyarrow as pa
import ray
import typer
from rich.console import Console
from rich.table import Table

from features.online_store import OnlineVersion, RedisOnlineStore
from features.snapshot import open_snapshot
from ray_jobs import logs
from ray_jobs.ml.data import feature_matrix
from ray_jobs.runtime import ray_session
from ray_jobs.settings import Settings, get_settings

console = Console()
CUSTOMER_ID = "customer_id"


@dataclass(frozen=True)
class MaterializeResult:
    version: OnlineVersion
    previous: Optional[str]
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
            .map_batches(_write_batch, batch_size=None, batch_format="pyarrow",
                         fn_kwargs=dict(settings=settings, version=version.id, names=features.names,
                                        sample_share=cfg.verify_sample / max(expected, 1))) \
            .take_all()
        sample = [i for row in written for i in row["sample"]]
        live = store.flip(version.id, expected_rows=expected, sample_ids=sample)
    except BaseException:
        store.abort(version.id)
        raise
    live_at = time.perf_counter()
    removed = store.collect()
    return MaterializeResult(live, before.id if before else None, expected, live_at - started, removed,
                             time.perf_counter() - live_at)


def rollback(settings: Settings) -> OnlineVersion:
    return RedisOnlineStore(settings).rollback()


def _print_versions(store: RedisOnlineStore) -> None:
    table = Table("version", "state", "rows", "schema", "source", "created")
    for v in store.versions():
        s = v.summary()
        table.add_row(s["version"], s["state"], f"{v.rows:,}", v.schema_hash, v.source, s["created_at"])
    console.print(table)


def command(
    snapshot: str = typer.Option("latest", help="Snapshot id, URI, or 'latest'."),
    do_rollback: bool = typer.Option(False, "--rollback", help="Make the previous version live again."),
    status: bool = typer.Option(False, "--status", help="Only list the online versions."),
) -> None:
    """Load a snapshot's features into the online store (Redis) and flip the live version."""
    logs.configure(logs.new_run_id("materialize"))
    settings = get_settings()
    store = RedisOnlineStore(settings)
    if do_rollback:
        live = rollback(settings)
        console.print(f"[green]rolled back:[/green] {live.id} is live again ({live.rows:,} rows from {live.source})")
    elif not status:
        with ray_session(settings):
            result = materialize(settings, snapshot)
        console.print(
            f"[green]{result.version.id} is live[/green]: {result.rows:,} customers x {len(result.version.features)} "
            f"features from {result.version.source} in {result.seconds:.1f} s ({result.rows_per_s:,.0f} rows/s); "
            f"previous: {result.previous or '-'}; removed {', '.join(result.removed) or 'nothing'} "
            f"in {result.cleanup_seconds:.1f} s"
        )
    _print_versions(store)


if __name__ == "__main__":
    typer.run(command)
