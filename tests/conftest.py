"""Fixtures for every test group (unit/, integration/, deploy/): settings on a per-test state
folder, isolation of the cached settings and of MLflow's environment variable, and RedisServer
builders (their pre-start checks are unit tests, their real starts integration tests).

The expensive fixtures (Ray, Spark on Ray, MLflow-registered models, Redis) are in
integration/conftest.py; plain helpers are in support.py."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.object_store import ENV_NAMES as S3_ENV_NAMES
from core.processes import free_port
from core.settings import Settings, get_settings
from ray_jobs.supervisors.redis_server import RedisServer

from support import SERVICES_PASSWORD, remove_churn_env


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(autouse=True)
def _isolated_settings() -> Iterator[None]:
    """Every test reads its own settings: no cached Settings, and no MLFLOW_TRACKING_URI left
    behind by an earlier test (``mlflow.set_tracking_uri`` exports it to the environment, so
    the next test's Settings would otherwise share the earlier test's registry), nor S3 keys."""
    def reset() -> None:
        get_settings.cache_clear()
        for name in ("MLFLOW_TRACKING_URI", *S3_ENV_NAMES):  # get_settings exports the object store's too
            os.environ.pop(name, None)

    reset()
    yield
    reset()


@pytest.fixture(scope="session", autouse=True)
def _quiet_ray_data() -> None:
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REDIS_URL / CHURN_* from the caller's shell leaks into the settings of a test
    (``pytestmark = pytest.mark.usefixtures("clean_env")`` in the RedisServer tests)."""
    remove_churn_env(monkeypatch)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Build RedisServers on tmp state dirs (never port 6379 unless asked); stops whatever they
    started afterwards."""
    created: list[RedisServer] = []

    def make(port: int | None = None, host: str = "127.0.0.1", **kwargs) -> RedisServer:
        settings = Settings(
            state_dir=tmp_path / f"state{len(created)}",
            redis={"host": host, "port": port or free_port(), "password": SERVICES_PASSWORD},
            **kwargs,
        )
        server = RedisServer(settings)
        created.append(server)
        return server

    yield make
    for server in created:
        server.down()
