"""Helpers shared by the online-store and serving tests: free ports and a project-owned
redis-server per test module (never port 6379)."""
from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Iterator

from ray_jobs.services import RedisServer
from ray_jobs.settings import Settings

PASSWORD = "online-test-pw"


def free_port() -> int:
    """A currently free loopback port (never 6379)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 6379:
            return port


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
