"""Batch scoring end to end (read, score, write) on Ray Data against a single-process baseline
that reads the same Parquet, calls ``inplace_predict`` and writes the same output, side by side.

    python -m load_tests.bench_batch_score --customers 1000000 --trees 200

Builds a snapshot with the real layout (``features.definitions``, 59 float32 features, Parquet
parts of 250,000 rows like the ETL's) from synthetic values, trains and registers a model with
``--trees`` trees, then alternates baseline and Ray runs ``--repeats`` times. Both runs load the
model from the registry, score with the same ``Scorer`` (probability + top reasons) and segments,
and write ``scores.parquet`` + ``scores.csv``; the outputs are checked to be equal. Ray's start-up
is timed apart: as a Ray job the cluster is already up. Writes ``load_tests/results/batch_score.json``
(``ratio``: Ray's seconds over the baseline's, median of the repeats; the goal is at most 1.5).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray

from core.ray_session import init_with_retry
from core.settings import Settings
from features.definitions import FEATURES
from features.snapshot import open_snapshot
from load_tests import common
from ml import registry
from ml.scoring import batch, score_table, segments
from ml.scoring.scorer import Scorer

RESULT = Path(__file__).parent / "results" / "batch_score.json"
TARGET_RATIO = 1.5


def baseline(settings: Settings, snapshot_id: str, out: Path) -> float:
    """The same work in this process: read, score with the same Scorer on all cores, segment,
    write the same Parquet and CSV."""
    started = time.perf_counter()
    snapshot = open_snapshot(settings, snapshot_id)
    model = registry.load(settings, registry.CHAMPION)
    table = pq.read_table(snapshot.data_uri, columns=["customer_id", *model.features.names])
    scorer = Scorer(bytes(model.booster.save_raw("ubj")), model.features.names, settings.segments.top_reasons,
                    settings.scoring.exact_reasons, threads=os.cpu_count() or 1)
    scored = scorer(table)
    proba = scored.column("probability").to_numpy()
    bounds = segments.tier_bounds(settings.segments, proba)
    constants = {score_table.MODEL_VERSION: model.version, score_table.SNAPSHOT_ID: snapshot.id,
                 score_table.SCORED_AT: dt.datetime.now(dt.UTC).replace(microsecond=0)}
    labelled = score_table.label_batch(scored, bounds, constants)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(labelled, out / batch.SCORES)
    pacsv.write_csv(labelled, out / batch.CSV)
    score_table.tier_summary(proba, bounds)
    return time.perf_counter() - started


def on_ray(settings: Settings, snapshot_id: str) -> tuple[float, batch.BatchScores]:
    started = time.perf_counter()
    result = batch.score_snapshot(settings, snapshot_id, registry.CHAMPION, force=True)
    return time.perf_counter() - started, result


def differences(baseline_out: Path, result: batch.BatchScores) -> dict[str, int]:
    """Rows that differ, per column, between the baseline's scores and Ray's (by customer id)."""
    columns = ["customer_id", "probability", score_table.SEGMENT, "top_reasons", score_table.MODEL_VERSION]
    a = pq.read_table(baseline_out / batch.SCORES, columns=columns).to_pandas().sort_values("customer_id")
    b = result.read_table(columns).to_pandas().sort_values("customer_id")
    if len(a) != len(b):
        return {"rows": abs(len(a) - len(b))}
    return {c: int((a[c].to_numpy() != b[c].to_numpy()).sum()) for c in columns}


def run(scratch: Path, args: argparse.Namespace) -> dict:
    settings = Settings(state_dir=scratch / "state", redis_url=None, mlflow_tracking_uri=None)
    started = time.perf_counter()
    snapshot = common.write_snapshot(settings, args.customers, files=4)
    version = common.register_champion(settings, snapshot, rounds=args.trees)
    setup_seconds = time.perf_counter() - started
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    init_with_retry(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    ray_start = time.perf_counter() - started
    base_times, ray_times, diffs = [], [], []
    try:
        for i in range(args.repeats):
            base_times.append(baseline(settings, snapshot.id, scratch / f"baseline-{i}"))
            seconds, result = on_ray(settings, snapshot.id)
            ray_times.append(seconds)
            diffs.append(differences(scratch / f"baseline-{i}", result))
            print(f"repeat {i + 1}: baseline {base_times[-1]:.2f} s, ray {ray_times[-1]:.2f} s", flush=True)
        pool = result.summary["pool"]
    finally:
        ray.shutdown()
    base, on = statistics.median(base_times), statistics.median(ray_times)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "customers": args.customers, "features": len(FEATURES), "trees": args.trees, "model_version": version,
        "repeats": args.repeats, "setup_seconds": round(setup_seconds, 1),
        "baseline": {"seconds": [round(t, 2) for t in base_times], "median_s": round(base, 2),
                     "rows_per_s": round(args.customers / base), "xgboost_threads": os.cpu_count()},
        "ray": {"seconds": [round(t, 2) for t in ray_times], "median_s": round(on, 2),
                "rows_per_s": round(args.customers / on), "start_s": round(ray_start, 2), "pool": pool},
        "ratio": round(on / base, 2),
        "ratio_with_ray_start": round((on + ray_start) / base, 2),
        "target_ratio": TARGET_RATIO,
        "target_met": on / base <= TARGET_RATIO,
        "identical_output": all(not any(d.values()) for d in diffs),
        "differing_rows": diffs,
        "machine": {**common.machine(), "load_avg_1m_before": load_before,
                    "load_avg_1m_after": os.getloadavg()[0]},
    }


def main() -> None:
    parser = common.parser(__doc__, RESULT)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    common.run_in_scratch(run, args)


if __name__ == "__main__":
    main()
