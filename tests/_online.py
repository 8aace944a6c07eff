"""Helpers shared by the online-store and serving tests: settings on a project-owned
redis-server per test module (never port 6379), loading and reading feature versions."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.processes import free_port
from core.settings import Settings
from features.online.redis_reader import RedisOnlineReader
from features.online.redis_writer import RedisOnlineStore
from ray_jobs.supervisors.redis_server import RedisServer

from support import synthetic_customers

PASSWORD = "online-test-pw"

FRAME, FEATURES = synthetic_customers(500)
"""The 500 customers of the online-store tests (the serving tests have 3,000 of their own)."""
IDS = FRAME["customer_id"].tolist()


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


def load(store: RedisOnlineStore, stamp: float, ids=IDS) -> str:
    """Write a version of ``FEATURES`` whose every value is ``stamp`` and publish it."""
    version = store.begin(FEATURES, source=f"stamp-{stamp}")
    store.put_many(version.id, ids, np.full((len(ids), len(FEATURES)), stamp, dtype=np.float32))
    store.flip(version.id, expected_rows=len(ids), sample_ids=ids[:10])
    store.prune_old_versions()
    return version.id


def publish(settings: Settings, frame, features, source: str = "test") -> str:
    """Materialise ``frame``'s feature columns as the live version (without Ray)."""
    store = RedisOnlineStore(settings)
    version = store.begin(features, source)
    store.put_many(version.id, frame["customer_id"].tolist(), frame[features.names].to_numpy("float32"))
    store.flip(version.id, expected_rows=len(frame))
    return version.id


def vector_keys(store: RedisOnlineStore, version: str) -> int:
    return sum(1 for _ in store.client.scan_iter(match=store.keys.prefix(version) + b"*", count=1000))


def read_rows(settings: Settings, ids: list[str]):
    """``get_many`` through a fresh RedisOnlineReader, closed afterwards."""
    async def read():
        reader = RedisOnlineReader(settings)
        try:
            return await reader.get_many(ids)
        finally:
            await reader.close()

    return asyncio.run(read())
