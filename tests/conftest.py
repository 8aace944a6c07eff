"""Shared fixtures: one local Ray cluster and one Spark-on-Ray session for the whole run
(starting them is the expensive part), and settings pointing at a per-test state folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import ray

from ray_jobs.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def telco_csv() -> str:
    """The public IBM Telco churn table, vendored in the repo (7,043 customers)."""
    return str(REPO / "datasets" / "telco_customer_churn.csv")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A real local Ray cluster sized like this machine (2 CPUs)."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def session_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("churn-state")


@pytest.fixture(scope="session")
def session_settings(session_state: Path) -> Settings:
    return Settings(state_dir=session_state, redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(scope="session")
def spark(ray_cluster: None, session_settings: Settings):
    """Spark running on the Ray cluster through RayDP."""
    from features.spark_session import raydp_spark

    with raydp_spark(session_settings) as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def _quiet_ray_data() -> None:
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
