"""A batch scoring run: snapshot + registered model -> an immutable scores folder.

Layout under ``<data>/scores/``::

    <run-id>/scores.parquet/part-*.parquet   customer_id, probability, risk_segment, top_reasons,
                                             model_version, snapshot_id, scored_at
    <run-id>/scores.csv                      the same rows in one file, for marketing
    <run-id>/summary.json                    rows, timing, tier bounds and counts
    LATEST

The run id is ``<snapshot>-v<model version>-<fingerprint of the settings and code that shape the
output>``: a re-run with identical inputs finds the completed folder and reuses it, so its files
stay byte-identical. ``scored_at`` is when the run was computed; a forced recomputation gives the
same rows, probabilities, segments and reasons, and only ``scored_at`` differs.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
from pyarrow.fs import FileSelector
from ray.data import SaveMode
from ray.data.datasource import FilenameProvider

from features.snapshot import Snapshot, code_version, fingerprint, open_snapshot
from features.spark_features import CUSTOMER_ID
from ray_jobs import storage
from ray_jobs.ml import registry, runs, scoring, segments
from ray_jobs.ml.registry import LoadedModel
from ray_jobs.settings import Settings

log = logging.getLogger(__name__)

SEGMENT, MODEL_VERSION, SNAPSHOT_ID, SCORED_AT = "risk_segment", "model_version", "snapshot_id", "scored_at"
SCORES, CSV, SUMMARY = "scores.parquet", "scores.csv", "summary.json"


@dataclass(frozen=True)
class ScoreRun:
    run: runs.Run
    summary: dict[str, Any]

    @property
    def scores_uri(self) -> str:
        return storage.join(self.run.uri, SCORES)

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        fs, path = storage.resolve(self.scores_uri)
        return pq.read_table(path, filesystem=fs, columns=columns)


def scores_root(settings: Settings) -> str:
    return storage.join(settings.data_uri, "scores")


def run_id(snapshot: Snapshot, model: LoadedModel, settings: Settings) -> str:
    shaping = [model.schema_hash, settings.segments.model_dump(), settings.scoring.exact_reasons, code_version()]
    return f"{snapshot.id}-v{model.version}-{fingerprint(*shaping)}"


def open_scores(settings: Settings, ref: str = "latest") -> ScoreRun:
    run = runs.resolve(scores_root(settings), ref, "scores")
    return ScoreRun(run, storage.read_json(storage.join(run.uri, SUMMARY)))


def score_snapshot(settings: Settings, snapshot_ref: str = "latest", model_ref: str = registry.CHAMPION,
                   force: bool = False) -> ScoreRun:
    """Score a snapshot with a registered model (needs a connected Ray cluster)."""
    snapshot = open_snapshot(settings, snapshot_ref)
    model = registry.load(settings, model_ref)
    scoring.check_compatible(model.features, snapshot.feature_set)
    rid = run_id(snapshot, model, settings)
    summary: dict[str, Any] = {}

    def write(tmp: str) -> None:
        summary.update(_score_into(tmp, snapshot, model, settings, rid))
        storage.write_json_atomic(storage.join(tmp, SUMMARY), summary)

    run = runs.publish(scores_root(settings), rid, write, force=force)
    return ScoreRun(run, summary if run.built else storage.read_json(storage.join(run.uri, SUMMARY)))


def _score_into(out: str, snapshot: Snapshot, model: LoadedModel, settings: Settings, rid: str) -> dict[str, Any]:
    started = time.perf_counter()
    scored_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    plan = scoring.plan_pool(ray.cluster_resources().get("CPU", 1.0), settings.scoring)
    log.info("scoring", extra={"run": rid, "snapshot": snapshot.id, "model_version": model.version,
                               "actors": plan.actors, "cpus_per_actor": plan.cpus_per_actor, "io_cpus": plan.io_cpus})
    with _ordered():
        source = snapshot.read(num_cpus=plan.io_cpus).select_columns([CUSTOMER_ID, *model.features.names])
        scored = scoring.score(source, model.booster, model.features, plan, settings.scoring,
                               settings.segments.top_reasons).materialize()
        proba = np.concatenate([t.column(scoring.PROBABILITY).to_numpy() for t in ray.get(scored.to_arrow_refs())])
        bounds = segments.tier_bounds(settings.segments, proba)
        constants = {MODEL_VERSION: model.version, SNAPSHOT_ID: snapshot.id, SCORED_AT: scored_at}
        _write_parquet(scored, bounds, constants, plan.io_cpus, storage.join(out, SCORES))
    export_csv(storage.join(out, SCORES), storage.join(out, CSV))
    seconds = time.perf_counter() - started
    log.info("scores written", extra={"run": rid, "rows": int(proba.size), "seconds": round(seconds, 2)})
    return {
        "run_id": rid, "snapshot_id": snapshot.id, "as_of": snapshot.manifest.get("as_of"),
        "model_version": model.version, "model_schema_hash": model.schema_hash, "scored_at": scored_at.isoformat(),
        "rows": int(proba.size), "seconds": round(seconds, 2), "rows_per_second": round(proba.size / seconds),
        "pool": {"actors": plan.actors, "cpus_per_actor": plan.cpus_per_actor, "io_cpus": plan.io_cpus,
                 "threads_per_actor": plan.threads, "batch_size": settings.scoring.batch_size},
        "tiers": tier_summary(proba, bounds),
        "expected_churners": float(proba.sum(dtype=np.float64)),
    }


def _write_parquet(scored: "ray.data.Dataset", bounds: list[tuple[str, float]], constants: dict[str, Any],
                   io_cpus: float, uri: str) -> None:
    """The scores with their segment and the run's constants, by Ray Data write tasks."""
    scored.map_batches(label_batch, fn_kwargs={"bounds": bounds, "constants": constants}, batch_format="pyarrow",
                       num_cpus=io_cpus, udf_modifying_row_count=False,
                       ).write_parquet(uri, filename_provider=PartNames(), mode=SaveMode.OVERWRITE,
                                       ray_remote_args={"num_cpus": io_cpus})


class PartNames(FilenameProvider):
    """``part-<task>.parquet``: stable names, in row order when order is preserved (the folder is the
    run's fresh temporary one, so overwriting is safe)."""

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:05d}.parquet"


@contextlib.contextmanager
def _ordered() -> Iterator[None]:
    """Keep rows in snapshot order through the actor pool (deterministic output files)."""
    options = ray.data.DataContext.get_current().execution_options
    previous, options.preserve_order = options.preserve_order, True
    try:
        yield
    finally:
        options.preserve_order = previous


def label_batch(batch: pa.Table, bounds: list[tuple[str, float]], constants: dict[str, Any]) -> pa.Table:
    """Add the risk segment and the run's constant columns to a scored batch."""
    proba = batch.column(scoring.PROBABILITY).to_numpy()
    columns = {CUSTOMER_ID: batch.column(CUSTOMER_ID), scoring.PROBABILITY: batch.column(scoring.PROBABILITY),
               SEGMENT: pa.array(segments.assign(proba, bounds), pa.string()),
               scoring.REASONS: batch.column(scoring.REASONS)}
    scalars = {name: pa.scalar(value) for name, value in constants.items()}
    columns.update({name: pa.repeat(value, batch.num_rows) for name, value in scalars.items()})
    return pa.table(columns)


def tier_summary(proba: np.ndarray, bounds: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Customers, share, expected churners and mean probability per tier, highest tier first."""
    tier = segments.assign(proba, bounds)
    rows = []
    for name, low in bounds:
        p = proba[tier == name]
        rows.append({"tier": name, "lower_bound": low, "customers": int(p.size),
                     "share": p.size / proba.size if proba.size else 0.0,
                     "expected_churners": float(p.sum(dtype=np.float64)),
                     "mean_probability": float(p.mean()) if p.size else None})
    return rows


def export_csv(parquet_uri: str, csv_uri: str) -> None:
    """One CSV file from the parquet parts, streamed in file order (one row group at a time)."""
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
