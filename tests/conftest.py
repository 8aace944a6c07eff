"""Shared fixtures: one local Ray cluster and one Spark-on-Ray session for the whole run
(starting them is the expensive part), and settings pointing at a per-test state folder."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from core.ray_session import init_with_retry
from core.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def telco_csv() -> str:
    """The public IBM Telco churn table, vendored in the repo (7,043 customers)."""
    return str(REPO / "datasets" / "telco_customer_churn.csv")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A real local Ray cluster sized like this machine (2 CPUs), shared until a module's
    Spark session ends it."""
    if not ray.is_initialized():
        init_with_retry(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield


@pytest.fixture(scope="session")
def session_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("churn-state")


@pytest.fixture(scope="session")
def session_settings(session_state: Path) -> Settings:
    return Settings(state_dir=session_state, redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(scope="module")
def spark(ray_cluster: None, session_settings: Settings):
    """Spark running on the Ray cluster through RayDP. RayDP's cross-language (Java) setup
    stays in the Ray session and later broke Ray Data's Python actors there (FooterReader
    died on start), so the Ray cluster ends with the Spark session; later modules get a new one."""
    from features.spark_session import raydp_spark

    with raydp_spark(session_settings) as session:
        yield session
    ray.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(autouse=True)
def _isolated_settings() -> Iterator[None]:
    """Every test reads its own settings: no cached Settings, and no MLFLOW_TRACKING_URI left
    behind by an earlier test (``mlflow.set_tracking_uri`` exports it to the environment, so
    the next test's Settings would otherwise share the earlier test's registry)."""
    def reset() -> None:
        get_settings.cache_clear()
        os.environ.pop("MLFLOW_TRACKING_URI", None)

    reset()
    yield
    reset()


@pytest.fixture(scope="session", autouse=True)
def _quiet_ray_data() -> None:
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


def write_snapshot(settings: Settings, frame, features, snapshot_id: str = "20260630-test", **manifest):
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


@pytest.fixture
def tiny_snapshot(settings: Settings):
    frame, features = synthetic_customers(3_000)
    return write_snapshot(settings, frame, features)


def register_model(settings: Settings, snapshot, alias: str = "champion", seed: int = 0, rounds: int = 40):
    """Train a small plain-XGBoost model on a snapshot and register it under ``alias``."""
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


@pytest.fixture
def champion(settings: Settings, tiny_snapshot):
    return register_model(settings, tiny_snapshot)
