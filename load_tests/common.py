"""What the online benchmarks share: the machine's description, a synthetic snapshot with the
platform's real FeatureSet at any size, and a champion model trained on it."""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.settings import Settings
from features.definitions import FEATURES
from features.feature_set import FeatureSet
from features.snapshot import Snapshot, publish
from ray_jobs.supervisors import serve_deployment


def machine() -> dict:
    """nproc, RAM, CPU model, versions, date, load: what a reader needs to judge the numbers."""
    import ray
    import redis
    import xgboost

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "cpu_model": models[0] if models else platform.processor(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "redis_py": redis.__version__,
        "xgboost": xgboost.__version__,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "load_avg_1m": os.getloadavg()[0],
    }


def parser(doc: str, result: Path | None, scratch: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark has: where its JSON result goes (``None``: the benchmark picks
    the file from its other options) and (when it writes files) a scratch folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if scratch:
        parser.add_argument("--out", help="Scratch folder [default: a temporary one, removed afterwards].")
    parser.add_argument("--result", type=Path, default=result)
    return parser


def save(report: dict, path: Path) -> None:
    """Write a benchmark's JSON result (what the README's table quotes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def run_in_scratch(run: Callable[[Path, argparse.Namespace], dict], args: argparse.Namespace) -> dict:
    """``run(scratch, args)`` in a temporary folder removed afterwards; its report saved and printed."""
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        report = run(Path(scratch), args)
    save(report, args.result)
    print(json.dumps(report, indent=2))
    return report


@contextlib.contextmanager
def deployed(settings: Settings) -> Iterator[None]:
    """The prediction service (``churn serve``'s deployment) for the duration of a ``with`` block."""
    try:
        serve_deployment.deploy(settings)
        serve_deployment.wait_ready(settings)
        yield
    finally:
        serve_deployment.shutdown(settings)


def customer_ids(customers: int) -> np.ndarray:
    """The ids of ``customer_frame``'s rows, in order."""
    return np.char.add("C", np.char.zfill(np.arange(customers).astype(str), 7))


def customer_frame(customers: int, seed: int = 0, features: FeatureSet = FEATURES) -> pd.DataFrame:
    """``customers`` rows of plausible values for every feature (3% missing) and a label that
    depends on a few of them."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {"customer_id": customer_ids(customers)}
    for spec in features.features:
        if spec.dtype == "category":
            values = rng.integers(0, len(spec.categories or (1,)), customers).astype(np.float32)
        elif spec.dtype == "bool":
            values = (rng.random(customers) < 0.3).astype(np.float32)
        elif spec.dtype == "int":
            values = rng.poisson(3.0, customers).astype(np.float32)
        else:
            values = rng.lognormal(3.0, 1.0, customers).astype(np.float32)
        values[rng.random(customers) < 0.03] = np.nan
        columns[spec.name] = values
    frame = pd.DataFrame(columns)
    numeric = frame[features.names].fillna(0).to_numpy(np.float32)
    weights = rng.normal(0, 1, numeric.shape[1]) * (rng.random(numeric.shape[1]) < 0.3)
    z = (numeric - numeric.mean(0)) / (numeric.std(0) + 1e-6)
    logit = -2.0 + z @ weights * 0.5
    frame["label"] = (rng.random(customers) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    frame["as_of"] = pd.Timestamp("2026-06-30").date()
    return frame


def write_snapshot(settings: Settings, customers: int, seed: int = 0, files: int = 8) -> Snapshot:
    """Publish a snapshot of ``customers`` synthetic customers in ``files`` parquet files."""
    frame = customer_frame(customers, seed)

    def write(tmp: str) -> dict:
        Path(tmp, "data").mkdir()
        for i, part in enumerate(np.array_split(np.arange(len(frame)), files)):
            table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
            pq.write_table(table, Path(tmp, "data", f"part-{i:03d}.parquet"))
        return {"kind": "benchmark", "as_of": "2026-06-30", "rows": len(frame), "label": "label",
                "features": FEATURES.to_json(), "schema_hash": FEATURES.schema_hash}

    return publish(settings, f"bench-{customers}-{seed}", write)[0]


def register_champion(settings: Settings, snapshot: Snapshot, rounds: int = 200, sample: int = 100_000) -> str:
    """Train ``rounds`` trees (depth 5) on a sample and register them as the champion."""
    import mlflow
    import xgboost as xgb

    from ml import registry
    frame = snapshot.to_pandas().head(sample)
    features = snapshot.feature_set
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.05, "nthread": 2, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(frame[features.names].to_numpy("float32"), label=frame["label"]), rounds)
    client = registry.setup(settings)
    with mlflow.start_run():
        model_uri = registry.log_model(booster, features, frame)
    version = registry.register(client, settings, model_uri, {"schema_hash": features.schema_hash,
                                                               "snapshot_id": snapshot.id})
    client.set_registered_model_alias(settings.registry.model_name, registry.CHAMPION, version.version)
    return version.version
