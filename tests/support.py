"""Plain helpers shared by every test group (not fixtures: those live in the conftest.py files).

``tests/`` is on ``sys.path`` (pyproject's ``pythonpath``), so any test imports these with
``from support import ...``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVICES_PASSWORD = "s3cr3t-pw"
"""The password of the RedisServers that ``make_server`` builds (tests/conftest.py)."""


def write_snapshot(settings, frame, features, snapshot_id: str = "20260630-test", **manifest):
    """Publish a snapshot from a pandas frame with the real layout (for tests that do not need
    Spark): data/*.parquet, manifest.json, _SUCCESS, LATEST."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.snapshot import publish

    def write(tmp: str) -> dict:
        Path(tmp, "data").mkdir()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), Path(tmp, "data", "part-0.parquet"))
        return {"kind": "test", "as_of": "2026-06-30", "rows": len(frame), "label": "label" in frame,
                "features": features.to_json(), "schema_hash": features.schema_hash, **manifest}

    return publish(settings, snapshot_id, write)[0]


def synthetic_customers(n: int, seed: int = 0):
    """A small labelled customer table with a learnable signal, plus its FeatureSet."""
    import numpy as np
    import pandas as pd

    from features.feature_set import FeatureSet, FeatureSpec

    rng = np.random.default_rng(seed)
    features = FeatureSet((
        FeatureSpec("monthly_price", "float", "price", "test"),
        FeatureSpec("tickets_30d", "int", "tickets", "test", 30, 0.0),
        FeatureSpec("tenure_days", "int", "tenure", "test"),
        FeatureSpec("contract_type", "category", "contract", "test",
                    categories=("month_to_month", "one_year", "two_year")),
    ))
    frame = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(n)],
        "monthly_price": rng.uniform(10, 120, n).astype("float32"),
        "tickets_30d": rng.poisson(1.0, n).astype("float32"),
        "tenure_days": rng.integers(0, 2000, n).astype("float32"),
        "contract_type": rng.integers(0, 3, n).astype("float32"),
    })
    logit = -2.5 + 0.8 * frame.tickets_30d - 0.001 * frame.tenure_days + 1.2 * (frame.contract_type == 0)
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
    frame["as_of"] = pd.Timestamp("2026-06-30").date()
    return frame, features


def shifted_customers(seed: int):
    """A second sample of the process of ``synthetic_customers``, with two features pushed away
    from it (``tickets_30d`` and ``monthly_price``)."""
    import numpy as np

    frame, features = synthetic_customers(4_000, seed=seed)
    frame["tickets_30d"] = np.random.default_rng(seed).poisson(3.0, len(frame)).astype("float32")
    frame["monthly_price"] *= 1.3
    return frame, features


def register_model(settings, snapshot, alias: str = "champion", seed: int = 0, rounds: int = 40):
    """Train a small plain-XGBoost model on a snapshot and register it under ``alias`` (MLflow:
    integration tests only)."""
    import mlflow
    import xgboost as xgb

    from ml import registry
    frame, features = snapshot.to_pandas(), snapshot.feature_set
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "seed": seed, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(frame[features.names].to_numpy("float32"), label=frame["label"],
                                            feature_names=features.names), rounds)
    client = registry.setup(settings)
    with mlflow.start_run():
        model_uri = registry.log_model(booster, features, frame)
    version = registry.register(client, settings, model_uri,
                                {"schema_hash": features.schema_hash, "snapshot_id": snapshot.id})
    client.set_registered_model_alias(settings.registry.model_name, alias, version.version)
    return version


def register_uplift_model(settings, frame, features, alias: str = "champion") -> str:
    """A small uplift model of ``frame`` (baseline on the label, a ``discount`` booster on a random
    half of it), registered under ``alias`` (MLflow: integration tests only)."""
    import mlflow
    import numpy as np
    import xgboost as xgb

    from ml import registry
    from ml.uplift.model import UpliftModel
    from ml.uplift.registry import log_uplift, register_uplift
    X, y = frame[features.names].to_numpy("float32"), frame["label"].to_numpy()
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "nthread": 1}
    baseline = xgb.train(params, xgb.DMatrix(X, label=y), 10)
    half = np.random.default_rng(1).random(len(X)) < 0.5
    start = baseline.predict(xgb.DMatrix(X[half]), output_margin=True) + np.log1p(-0.2)
    arm = xgb.train(params, xgb.DMatrix(X[half], label=y[half], base_margin=start), 5)
    model = UpliftModel(list(features.names), baseline, {"discount": arm}, {"discount": 0.2})
    client = registry.setup(settings)
    with mlflow.start_run():
        uri = log_uplift(model)
    version = register_uplift(client, settings, uri, {"schema_hash": features.schema_hash})
    client.set_registered_model_alias(settings.registry.uplift_model_name, alias, version)
    return version


def remove_churn_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop REDIS_URL / CHURN_* of the caller's shell (for module-scoped fixtures too, through
    ``pytest.MonkeyPatch.context()``)."""
    for name in list(os.environ):
        if name.startswith("CHURN_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
