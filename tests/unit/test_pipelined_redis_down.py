"""The pipelined Redis client of the serving path when nothing listens (no redis-server needed):
a connection error at once, and one of the errors callers catch."""
from __future__ import annotations

import asyncio

import pytest

from core.processes import free_port
from core.redis_target import RedisTarget
from features.online.pipelined_redis import PipelinedRedis, RedisCallError


def test_redis_down_is_a_connection_error_at_once():
    async def scenario():
        client = PipelinedRedis(RedisTarget.of_url(f"redis://127.0.0.1:{free_port()}/0"), timeout_s=2)
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionError, match="cannot connect to Redis"):
            await client.execute("PING")
        assert asyncio.get_running_loop().time() - started < 0.5

    asyncio.run(scenario())


def test_connection_errors_are_among_the_redis_call_errors():
    assert issubclass(ConnectionError, RedisCallError[0])
