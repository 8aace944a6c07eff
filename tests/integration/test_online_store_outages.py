"""Online-store readers when Redis fails: an outage is a fast StoreUnavailable and the pool
reconnects once Redis is back; a read that times out is tried once more. Each test runs a
redis-server of its own (it stops or stalls it)."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from features.online.interface import StoreUnavailable
from features.online.redis_reader import RedisOnlineReader
from features.online.redis_writer import RedisOnlineStore

from _online import IDS, load, online_settings, running_redis

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]


def test_reader_fails_fast_while_redis_is_down_and_recovers(tmp_path: Path):
    with running_redis(tmp_path / "own") as server:
        settings = online_settings(tmp_path, server.cfg.port)
        load(RedisOnlineStore(settings), 5.0)

        async def scenario():
            reader = RedisOnlineReader(settings)
            assert (await reader.get_many(IDS[:3])).values[0, 0] == 5.0
            server.down()
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(StoreUnavailable, match="unreachable"):
                await reader.get_many(IDS[:3])
            with pytest.raises(StoreUnavailable):
                await reader.ping()
            assert loop.time() - started < 2
            server.up()
            assert (await reader.get_many(IDS[:3])).values[0, 0] == 5.0  # AOF kept it; the pool reconnected
            await reader.close()

        asyncio.run(scenario())


def test_a_read_that_times_out_is_tried_once_more(tmp_path: Path):
    """Redis stalls (CLIENT PAUSE) a little longer than one read timeout: the retry answers; a
    stall longer than two timeouts is a StoreUnavailable."""
    with running_redis(tmp_path / "own") as server:
        settings = online_settings(tmp_path, server.cfg.port, online={"socket_timeout_s": 0.3})
        load(RedisOnlineStore(settings), 4.0)
        admin = RedisOnlineStore(settings).client

        async def scenario():
            reader = RedisOnlineReader(settings)
            await reader.live()
            admin.execute_command("CLIENT", "PAUSE", 450, "ALL")
            started = asyncio.get_running_loop().time()
            assert (await reader.get_many(IDS[:3])).values[0, 0] == 4.0
            assert asyncio.get_running_loop().time() - started >= 0.3  # the first read did time out
            await asyncio.sleep(0.3)
            admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
            with pytest.raises(StoreUnavailable, match="unreachable"):
                await reader.get_many(IDS[:3])
            await reader.close()

        asyncio.run(scenario())
