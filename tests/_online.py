"""Helpers shared by the online-store and serving tests: free ports and a project-owned
redis-server per test module (never port 6379)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from core.processes import free_port
from core.settings import Settings
from ray_jobs.supervisors.redis_server import RedisServer

PASSWORD = "online-test-pw"


def online_settings(state_dir: Path, redis_port: int, **overrides) -> Settings:
    return Settings(state_dir=state_dir, redis_url=None, mlflow_tracking_uri=None,
                    redis={"port": redis_port, "password": PASSWORD}, **overrides)


@contextlib.contextmanager
def running_redis(state_dir: Path) -> Iterator[RedisServer]:
    """A real redis-server of the project (AOF on, RDB off) on a free port, stopped afterwards."""
    server = RedisServer(online_settings(state_dir, free_port()))
    server.up()
    try:
        yield server
    finally:
        server.down()
