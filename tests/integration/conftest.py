"""Fixtures of the integration tests: one local Ray cluster per module and one Spark-on-Ray
session (starting them is the expensive part), module-wide state with a snapshot and a
registered champion, and a project-owned redis-server per module."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from core.ray_session import init_with_retry
from core.settings import Settings
from ray_jobs.supervisors.redis_server import RedisServer

from _online import online_settings, running_redis
from support import REPO, register_model, synthetic_customers, write_snapshot


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


# --------------------------------------------------------------------- a module's state and model
@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One state folder (and embedded MLflow store) for the whole module, so that its snapshot,
    model and outputs are built once and several small tests assert on them."""
    return Settings(state_dir=tmp_path_factory.mktemp("module-state"), redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(scope="module")
def module_snapshot(module_settings: Settings):
    """3,000 synthetic customers published as the module's latest snapshot."""
    frame, features = synthetic_customers(3_000)
    return write_snapshot(module_settings, frame, features)


@pytest.fixture(scope="module")
def module_champion(module_settings: Settings, module_snapshot):
    """A small XGBoost model of the module's snapshot, registered as champion (MLflow on SQLite)."""
    return register_model(module_settings, module_snapshot)


# --------------------------------------------------------------------- Redis
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A project-owned redis-server for the module (free port, never 6379)."""
    with running_redis(tmp_path_factory.mktemp("online-redis")) as server:
        yield server


@pytest.fixture
def osettings(tmp_path: Path, redis_server: RedisServer) -> Settings:
    """Settings on the module's Redis, with a namespace of its own per test."""
    return online_settings(tmp_path, redis_server.cfg.port,
                           online={"namespace": f"t{abs(hash(tmp_path)) % 10**8}:fv", "pointer_ttl_s": 0.01})
