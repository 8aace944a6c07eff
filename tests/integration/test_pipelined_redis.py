"""The pipelined Redis client of the serving path, against a real redis-server: replies reach
their callers in order under concurrency, a cancelled caller shifts nothing, concurrent commands
leave in one write, error replies and bad passwords are errors that say so, a stalled server
drops the connection. (Redis being down is a unit test: tests/unit/test_pipelined_redis_down.py.)"""
from __future__ import annotations

import asyncio
import shutil

import pytest
import redis

from core.redis_target import RedisTarget, redis_target
from features.online.pipelined_redis import PipelinedRedis, RedisReplyError

from _online import PASSWORD, running_redis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("pipelined-redis")) as server:
        redis.Redis.from_url(redis_target(server.settings).url).mset({f"k{i}": f"v{i}" for i in range(1000)})
        yield server


@pytest.fixture
def url(server) -> str:
    return redis_target(server.settings).url


def run(scenario):
    return asyncio.run(scenario())


def test_concurrent_commands_get_their_own_replies_from_one_write(url, monkeypatch):
    async def scenario():
        client = PipelinedRedis(RedisTarget.of_url(url), timeout_s=2)
        await client.execute("PING")
        writes = []
        transport = client._connection._transport
        original = transport.write
        monkeypatch.setattr(transport, "write", lambda data: (writes.append(data), original(data)))
        replies = await asyncio.gather(*(client.execute("MGET", f"k{i}", f"k{999 - i}", "absent") for i in range(500)))
        await client.close()
        return replies, writes

    replies, writes = run(scenario)
    assert replies == [[f"v{i}".encode(), f"v{999 - i}".encode(), None] for i in range(500)]
    assert len(writes) == 1, "commands issued in one loop iteration leave together"


def test_a_cancelled_caller_does_not_shift_the_replies_of_others(url):
    async def scenario():
        client = PipelinedRedis(RedisTarget.of_url(url), timeout_s=2)
        first = asyncio.ensure_future(client.execute("GET", "k1"))
        second = asyncio.ensure_future(client.execute("GET", "k2"))
        await asyncio.sleep(0)
        first.cancel()
        got = await second, await client.execute("GET", "k3")
        await client.close()
        return got

    assert run(scenario) == (b"v2", b"v3")


def test_an_error_reply_says_what_redis_said_and_the_connection_stays_usable(url):
    async def scenario():
        client = PipelinedRedis(RedisTarget.of_url(url), timeout_s=2)
        with pytest.raises(RedisReplyError, match="WRONGTYPE"):
            await client.execute("HGETALL", "k1")
        assert await client.execute("GET", "k1") == b"v1", "the connection is still usable after an error reply"
        await client.close()

    run(scenario)


def test_a_wrong_password_says_what_redis_said(url):
    async def scenario():
        intruder = PipelinedRedis(RedisTarget.of_url(url.replace(PASSWORD, "wrong")), timeout_s=2)
        with pytest.raises(RedisReplyError, match=r"WRONGPASS|invalid"):
            await intruder.execute("GET", "k1")
        await intruder.close()

    run(scenario)


def test_a_stalled_server_drops_the_connection_and_nothing_waits_forever(url):
    admin = redis.Redis.from_url(url)

    async def scenario():
        client = PipelinedRedis(RedisTarget.of_url(url), timeout_s=0.2)
        await client.execute("PING")
        first = client._connection
        admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError, match=r"no reply from Redis within 0\.2 s"):
            await asyncio.gather(*(client.execute("GET", f"k{i}") for i in range(10)))
        assert 0.35 < loop.time() - started < 0.9, "one timeout, then one more try on a fresh connection"
        assert first.closed
        await asyncio.sleep(1.0)
        assert await client.execute("GET", "k7") == b"v7"
        assert client._connection is not first, "reconnected"
        await client.close()

    run(scenario)
