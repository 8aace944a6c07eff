"""Batch scoring: snapshot + registered model -> an immutable scores folder.

Layout under ``<data>/scores/``::

    <output-id>/scores.parquet/part-*.parquet   customer_id, probability, risk_segment, top_reasons,
                                             model_version, snapshot_id, scored_at
    <output-id>/scores.csv                      the same rows in one file, for marketing
    <output-id>/summary.json                    rows, timing, tier bounds and counts
    LATEST

The output id is ``<snapshot>-v<model version>-<fingerprint of the settings and code that shape the
output>``: a re-run with identical inputs finds the completed folder and reuses it, so its files
stay byte-identical. ``scored_at`` is when the run was computed; a forced recomputation gives the
same rows, probabilities, segments and reasons per customer, and only ``scored_at`` differs (row
order follows Ray's block order, which may differ between runs: join or sort on customer_id).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
from pyarrow.fs import FileSelector
from ray.data import SaveMode

from core import outputs, storage
from core.provenance import code_version, fingerprint
from core.schema import CUSTOMER_ID
from core.settings import Settings
from features.snapshot import Snapshot, open_snapshot
from ml import registry
from ml.registry import LoadedModel
from ml.scoring import scorer, segments
from ml.scoring.score_table import (
    MODEL_VERSION,
    PROBABILITY,
    SCORED_AT,
    SNAPSHOT_ID,
    PartNames,
    label_batch,
    tier_summary,
)

log = logging.getLogger(__name__)

SCORES, CSV, SUMMARY = "scores.parquet", "scores.csv", "summary.json"
BLOCK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class BatchScores:
    output: outputs.Output
    summary: dict[str, Any]

    @property
    def scores_uri(self) -> str:
        return storage.join(self.output.uri, SCORES)

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        fs, path = storage.resolve(self.scores_uri)
        return pq.read_table(path, filesystem=fs, columns=columns)


def scores_root(settings: Settings) -> str:
    return storage.join(settings.data_uri, "scores")


def scores_id(snapshot: Snapshot, model: LoadedModel, settings: Settings) -> str:
    shaping = [model.schema_hash, settings.segments.model_dump(), settings.scoring.exact_reasons, code_version()]
    return f"{snapshot.id}-v{model.version}-{fingerprint(*shaping)}"


def open_scores(settings: Settings, ref: str = "latest") -> BatchScores:
    output = outputs.resolve(scores_root(settings), ref, "scores")
    return BatchScores(output, storage.read_json(storage.join(output.uri, SUMMARY)))


def score_snapshot(settings: Settings, snapshot_ref: str = "latest", model_ref: str = registry.CHAMPION,
                   force: bool = False) -> BatchScores:
    """Score a snapshot with a registered model (needs a connected Ray cluster)."""
    snapshot = open_snapshot(settings, snapshot_ref)
    model = registry.load(settings, model_ref)
    scorer.check_compatible(model.features, snapshot.feature_set)
    output_id = scores_id(snapshot, model, settings)
    return BatchScores(*outputs.publish_summarised(
        scores_root(settings), output_id, lambda tmp: _score_into(tmp, snapshot, model, settings, output_id),
        SUMMARY, force))


def _score_into(out: str, snapshot: Snapshot, model: LoadedModel, settings: Settings, output_id: str) -> dict[str, Any]:
    started = time.perf_counter()
    scored_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    plan = scorer.plan_pool(ray.cluster_resources().get("CPU", 1.0), settings.scoring)
    log.info("scoring", extra={"run": output_id, "snapshot": snapshot.id, "model_version": model.version,
                               "actors": plan.actors, "cpus_per_actor": plan.cpus_per_actor, "io_cpus": plan.io_cpus})
    scores_uri = storage.join(out, SCORES)
    # about one block per model call (Ray Data's default of 200 blocks made every 100k-row batch
    # out of 15 small ones)
    blocks = max(plan.actors, math.ceil(int(snapshot.manifest["rows"]) / settings.scoring.batch_size))
    with _small_blocks():
        source = snapshot.read(num_cpus=plan.io_cpus, override_num_blocks=blocks) \
            .select_columns([CUSTOMER_ID, *model.features.names])
        scored = scorer.score(source, model.booster, model.features, plan, settings.scoring,
                               settings.segments.top_reasons)
        if settings.segments.by_quantile:  # the bounds need every probability first: two passes
            scored = scored.materialize()
            bounds = segments.tier_bounds(settings.segments, np.concatenate(
                [t.column(PROBABILITY).to_numpy() for t in ray.get(scored.to_arrow_refs())]))
        else:  # fixed bounds: read, score, label and write stream in one pass
            bounds = segments.tier_bounds(settings.segments)
        constants = {MODEL_VERSION: model.version, SNAPSHOT_ID: snapshot.id, SCORED_AT: scored_at}
        _write_parquet(scored, bounds, constants, plan.io_cpus, scores_uri)
    proba = _probabilities(scores_uri)
    export_csv(scores_uri, storage.join(out, CSV))
    seconds = time.perf_counter() - started
    log.info("scores written", extra={"run": output_id, "rows": int(proba.size), "seconds": round(seconds, 2)})
    return {
        "run_id": output_id, "snapshot_id": snapshot.id, "as_of": snapshot.manifest.get("as_of"),
        "model_version": model.version, "model_schema_hash": model.schema_hash, "scored_at": scored_at.isoformat(),
        "rows": int(proba.size), "seconds": round(seconds, 2), "rows_per_second": round(proba.size / seconds),
        "pool": {"actors": plan.actors, "cpus_per_actor": plan.cpus_per_actor, "io_cpus": plan.io_cpus,
                 "threads_per_actor": plan.threads, "batch_size": settings.scoring.batch_size},
        "tiers": tier_summary(proba, bounds),
        "expected_churners": float(proba.sum(dtype=np.float64)),
    }


def _write_parquet(scored: ray.data.Dataset, bounds: list[tuple[str, float]], constants: dict[str, Any],
                   io_cpus: float, uri: str) -> None:
    """The scores with their segment and the run's constants, by Ray Data write tasks."""
    scored.map_batches(cast("Callable[[Any], Any]", label_batch), fn_kwargs={"bounds": bounds, "constants": constants},
                       batch_format="pyarrow", num_cpus=io_cpus, udf_modifying_row_count=False,
                       ).write_parquet(uri, filename_provider=PartNames(), mode=SaveMode.OVERWRITE,
                                       ray_remote_args={"num_cpus": io_cpus})


def _probabilities(scores_uri: str) -> np.ndarray:
    """The probability column of written scores (4 bytes a customer), for the summary."""
    fs, path = storage.resolve(scores_uri)
    return pq.read_table(path, filesystem=fs, columns=[PROBABILITY]).column(0).to_numpy()


@contextlib.contextmanager
def _small_blocks() -> Iterator[None]:
    """Read blocks of about a batch, so every actor gets a share (128 MiB blocks of a 1M-row
    snapshot made three blocks for two actors: one did two thirds of the work)."""
    context = ray.data.DataContext.get_current()
    previous, context.target_max_block_size = context.target_max_block_size, BLOCK_BYTES
    try:
        yield
    finally:
        context.target_max_block_size = previous


def export_csv(parquet_uri: str, csv_uri: str) -> None:
    """One CSV file from the parquet parts, streamed one row group at a time."""
    fs, folder = storage.resolve(parquet_uri)
    parts = sorted(i.path for i in fs.get_file_info(FileSelector(folder)) if i.path.endswith(".parquet"))
    csv_fs, csv_path = storage.resolve(csv_uri)
    writer = None
    with csv_fs.open_output_stream(csv_path) as sink:
        for part in parts:
            with fs.open_input_file(part) as source:
                reader = pq.ParquetFile(source)
                for group in range(reader.num_row_groups):
                    table = reader.read_row_group(group)
                    writer = writer or pacsv.CSVWriter(sink, table.schema)
                    writer.write_table(table)
        if writer is not None:
            writer.close()
