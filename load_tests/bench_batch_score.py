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
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
import xgboost as xgb

from features.definitions import FEATURES
from features.feature_set import FeatureSet
from features.snapshot import Snapshot, open_snapshot, publish
from load_tests.bench_generate import _machine
from ray_jobs.ml import registry, score_runs, segments
from ray_jobs.ml.scoring import Scorer
from ray_jobs.settings import Settings

RESULT = Path(__file__).parent / "results" / "batch_score.json"
TARGET_RATIO = 1.5
PART_ROWS = 250_000


def synthetic_features(n: int, features: FeatureSet, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Plausible values per feature type (codes, flags, counts, amounts; some missing) and a label
    that depends on a handful of them."""
    rng = np.random.default_rng(seed)
    columns = {}
    for f in features.features:
        if f.dtype == "category":
            values = rng.integers(0, len(f.categories or ("x",)), n).astype(np.float32)
        elif f.dtype == "bool":
            values = (rng.random(n) < 0.4).astype(np.float32)
        elif f.dtype == "int":
            values = rng.poisson(rng.uniform(0.5, 30), n).astype(np.float32)
        else:
            values = rng.lognormal(rng.uniform(0, 4), 0.6, n).astype(np.float32)
        if f.default is None:
            values[rng.random(n) < 0.03] = np.nan
        columns[f.name] = values
    frame = pd.DataFrame(columns)
    z = np.nan_to_num((frame.to_numpy(np.float64) - np.nanmean(frame, axis=0)) / (np.nanstd(frame, axis=0) + 1e-9))
    logit = -2.2 + z[:, :12] @ rng.normal(0, 0.5, 12)
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)


def build_snapshot(settings: Settings, n: int, seed: int = 0) -> tuple[Snapshot, pd.DataFrame, np.ndarray]:
    frame, label = synthetic_features(n, FEATURES, seed)

    def write(tmp: str) -> dict:
        Path(tmp, "data").mkdir()
        table = pa.Table.from_pandas(
            pd.concat([pd.DataFrame({"customer_id": [f"C{i:08d}" for i in range(n)]}), frame], axis=1)
            .assign(label=label, as_of=dt.date(2026, 6, 30)), preserve_index=False)
        for part, start in enumerate(range(0, n, PART_ROWS)):
            pq.write_table(table.slice(start, PART_ROWS), Path(tmp, "data", f"part-{part:05d}.parquet"))
        return {"kind": "bench", "as_of": "2026-06-30", "rows": n, "label": True, "features": FEATURES.to_json(),
                "schema_hash": FEATURES.schema_hash}

    return publish(settings, f"20260630-bench{n}", write)[0], frame, label


def register_champion(settings: Settings, frame: pd.DataFrame, label: np.ndarray, trees: int) -> str:
    """Train ``trees`` trees (depth 5, as the platform's default) on a sample; register as champion."""
    sample = slice(0, min(len(frame), 200_000))
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.05, "tree_method": "hist", "seed": 0}
    matrix = xgb.DMatrix(frame[sample].to_numpy(np.float32), label=label[sample], feature_names=FEATURES.names)
    booster = xgb.train(params, matrix, trees)
    client = registry.setup(settings)
    with mlflow.start_run() as run:
        registry.log_model(booster, FEATURES, frame.head(100))
    version = registry.register(client, settings, run.info.run_id, {"schema_hash": FEATURES.schema_hash})
    client.set_registered_model_alias(settings.registry.model_name, registry.CHAMPION, version.version)
    return version.version


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
    constants = {score_runs.MODEL_VERSION: model.version, score_runs.SNAPSHOT_ID: snapshot.id,
                 score_runs.SCORED_AT: dt.datetime.now(dt.timezone.utc).replace(microsecond=0)}
    labelled = score_runs.label_batch(scored, bounds, constants)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(labelled, out / score_runs.SCORES)
    pacsv.write_csv(labelled, out / score_runs.CSV)
    score_runs.tier_summary(proba, bounds)
    return time.perf_counter() - started


def on_ray(settings: Settings, snapshot_id: str) -> tuple[float, score_runs.ScoreRun]:
    started = time.perf_counter()
    result = score_runs.score_snapshot(settings, snapshot_id, registry.CHAMPION, force=True)
    return time.perf_counter() - started, result


def same_output(baseline_out: Path, result: score_runs.ScoreRun) -> bool:
    columns = ["customer_id", "probability", score_runs.SEGMENT, "top_reasons", score_runs.MODEL_VERSION]
    a = pq.read_table(baseline_out / score_runs.SCORES, columns=columns)
    b = result.read_table(columns)
    return a.equals(b)


def run(scratch: Path, args: argparse.Namespace) -> dict:
    settings = Settings(state_dir=scratch / "state", redis_url=None, mlflow_tracking_uri=None)
    started = time.perf_counter()
    snapshot, frame, label = build_snapshot(settings, args.customers)
    version = register_champion(settings, frame, label, args.trees)
    del frame
    setup_seconds = time.perf_counter() - started
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    ray_start = time.perf_counter() - started
    base_times, ray_times, identical = [], [], []
    try:
        for i in range(args.repeats):
            base_times.append(baseline(settings, snapshot.id, scratch / f"baseline-{i}"))
            seconds, result = on_ray(settings, snapshot.id)
            ray_times.append(seconds)
            identical.append(same_output(scratch / f"baseline-{i}", result))
            print(f"repeat {i + 1}: baseline {base_times[-1]:.2f} s, ray {ray_times[-1]:.2f} s", flush=True)
        pool = result.summary["pool"]
    finally:
        ray.shutdown()
    base, on = statistics.median(base_times), statistics.median(ray_times)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
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
        "identical_output": all(identical),
        "machine": {**_machine(), "xgboost": xgb.__version__, "load_avg_1m_before": load_before,
                    "load_avg_1m_after": os.getloadavg()[0]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", help="Scratch folder [default: a temporary one, removed afterwards].")
    parser.add_argument("--result", type=Path, default=RESULT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        report = run(Path(scratch), args)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
