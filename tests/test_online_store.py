"""The online feature store against a real redis-server: encoding, versioned loads, the atomic
flip, rollback, failed loads, readers during flips, Redis outages, and the materialize step on Ray."""
from __future__ import annotations

import asyncio
import math
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from _online import online_settings, running_redis
from conftest import synthetic_customers, write_snapshot
from typer.testing import CliRunner

from core.settings import get_settings
from features.feature_set import SchemaMismatch
from features.online import materialize
from features.online.codec import decode_rows, encode_rows, schema_tag
from features.online.interface import LoadIncomplete, NoLiveVersion, OnlineStoreError, StoreUnavailable
from features.online.redis_reader import RedisOnlineReader
from features.online.redis_writer import RedisOnlineStore

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]

FRAME, FEATURES = synthetic_customers(500)
IDS = FRAME["customer_id"].tolist()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("online-redis")) as server:
        yield server


@pytest.fixture
def osettings(tmp_path: Path, redis_server):
    """Settings on the module's Redis, with a namespace of its own per test."""
    settings = online_settings(tmp_path, redis_server.cfg.port,
                               online={"namespace": f"t{abs(hash(tmp_path)) % 10**8}:fv", "pointer_ttl_s": 0.01})
    return settings


def load(store: RedisOnlineStore, stamp: float, ids=IDS) -> str:
    """Write a version whose every value is ``stamp`` and publish it."""
    version = store.begin(FEATURES, source=f"stamp-{stamp}")
    store.put_many(version.id, ids, np.full((len(ids), len(FEATURES)), stamp, dtype=np.float32))
    store.flip(version.id, expected_rows=len(ids), sample_ids=ids[:10])
    store.prune_old_versions()
    return version.id


def vector_keys(store: RedisOnlineStore, version: str) -> int:
    return sum(1 for _ in store.client.scan_iter(match=store.keys.prefix(version) + b"*", count=1000))


def test_encoding_round_trip_and_layout_checks():
    tag = schema_tag(FEATURES.schema_hash)
    values = np.array([[1.5, np.nan, -3.0, 2.0], [0.0, 7.0, np.inf, 1e-8]], dtype=np.float32)
    raw = encode_rows(tag, values)
    assert all(len(v) == 4 + 4 * 4 for v in raw)
    decoded, found = decode_rows([raw[0], None, raw[1]], tag, 4)
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(decoded[[0, 2]], values)
    assert np.isnan(decoded[1]).all()
    with pytest.raises(SchemaMismatch, match="schema tag"):
        decode_rows(raw, tag ^ 1, 4)
    with pytest.raises(SchemaMismatch, match="3 float32"):
        decode_rows(raw, tag, 3)


def test_load_read_flip_rollback_and_cleanup(osettings):
    store = RedisOnlineStore(osettings)
    assert store.live() is None
    v1 = load(store, 1.0)
    v2 = load(store, 2.0)
    assert store.live().id == v2
    states = {v.id: v.state for v in store.versions()}
    assert states == {v1: "previous", v2: "live"}

    v3 = load(store, 3.0)
    assert {v.id: v.state for v in store.versions()} == {v2: "previous", v3: "live"}
    assert vector_keys(store, v1) == 0  # older than previous: removed
    assert vector_keys(store, v2) == vector_keys(store, v3) == len(IDS)

    rolled = store.rollback()
    assert rolled.id == v2 and store.live().id == v2
    assert {v.id: v.state for v in store.versions()} == {v2: "live", v3: "previous"}

    async def read():
        reader = RedisOnlineReader(osettings)
        rows = await reader.get_many([IDS[0], "nobody", IDS[-1]])
        await reader.close()
        return rows

    rows = asyncio.run(read())
    assert rows.version.id == v2 and rows.found.tolist() == [True, False, True]
    assert (rows.values[[0, 2]] == 2.0).all() and np.isnan(rows.values[1]).all()


def test_incomplete_load_is_never_published(osettings):
    store = RedisOnlineStore(osettings)
    live = load(store, 1.0)
    version = store.begin(FEATURES, source="half")
    store.put_many(version.id, IDS[:100], np.zeros((100, len(FEATURES)), dtype=np.float32))
    with pytest.raises(LoadIncomplete, match="100 rows confirmed, 500 expected"):
        store.flip(version.id, expected_rows=len(IDS))
    store.abort(version.id)
    assert store.live().id == live
    assert vector_keys(store, version.id) == 0 and version.id not in {v.id for v in store.versions()}
    with pytest.raises(OnlineStoreError, match="does not exist"):
        store.flip(version.id, expected_rows=100)


def test_readers_never_see_a_mix_during_flips(osettings):
    """Batches read while versions flip (every value of version k is k) are all from one version."""
    store = RedisOnlineStore(osettings)
    load(store, 1.0)
    stop = threading.Event()
    flips: list[float] = []

    def flipper():
        stamp = 2.0
        while not stop.is_set() and stamp < 12:
            load(store, stamp)
            flips.append(stamp)
            stamp += 1

    async def readers() -> list[set]:
        reader = RedisOnlineReader(osettings)
        seen: list[set] = []
        rng = np.random.default_rng(0)

        async def one():
            while not stop.is_set():
                ids = [IDS[i] for i in rng.choice(len(IDS), 50, replace=False)]
                rows = await reader.get_many(ids)
                assert rows.found.all()
                seen.append(set(np.unique(rows.values).tolist()) | {float(rows.version.source.split("-")[1])})

        await asyncio.gather(*(one() for _ in range(4)))
        await reader.close()
        return seen

    thread = threading.Thread(target=flipper)
    thread.start()
    results: list = []
    watcher = threading.Thread(target=lambda: results.append(asyncio.run(readers())))
    watcher.start()
    thread.join(timeout=120)
    stop.set()
    watcher.join(timeout=30)
    assert len(flips) == 10
    seen = results[0]
    assert len(seen) > 50 and all(len(s) == 1 for s in seen), [s for s in seen if len(s) > 1][:3]
    assert len({next(iter(s)) for s in seen}) > 2  # the readers did follow the flips


def test_reader_refuses_vectors_of_another_layout(osettings):
    store = RedisOnlineStore(osettings)
    version = load(store, 1.0)
    store.client.set(store.keys.prefix(version) + b"intruder", encode_rows(schema_tag("ff" * 8),
                                                                          np.ones((1, len(FEATURES))))[0])

    async def read():
        reader = RedisOnlineReader(osettings)
        try:
            await reader.get_many(["intruder"])
        finally:
            await reader.close()

    with pytest.raises(SchemaMismatch):
        asyncio.run(read())


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


def test_no_live_version_is_a_clear_error(osettings):
    async def read():
        reader = RedisOnlineReader(osettings)
        try:
            await reader.get_many(IDS[:1])
        finally:
            await reader.close()

    with pytest.raises(NoLiveVersion, match="churn materialize"):
        asyncio.run(read())


# ------------------------------------------------------------------------------- on Ray
def test_materialize_snapshot_on_ray(osettings, ray_cluster):
    snapshot = write_snapshot(osettings, FRAME, FEATURES)
    first = materialize.materialize(osettings, "latest")
    assert first.rows == len(FRAME) and first.previous is None and first.version.state == "live"
    assert first.version.schema_hash == FEATURES.schema_hash and first.version.source == snapshot.id

    async def read(ids):
        reader = RedisOnlineReader(osettings)
        try:
            return await reader.get_many(ids)
        finally:
            await reader.close()

    rows = asyncio.run(read(IDS))
    expected = FRAME[FEATURES.names].to_numpy("float32")
    assert rows.found.all()
    np.testing.assert_array_equal(rows.values, expected)

    second = materialize.materialize(osettings, snapshot.id)
    assert second.previous == first.version.id and second.version.id != first.version.id
    assert materialize.rollback(osettings).id == first.version.id


def test_failed_materialize_leaves_the_live_version(osettings, ray_cluster):
    store = RedisOnlineStore(osettings)
    live = load(store, 1.0)
    write_snapshot(osettings, FRAME, FEATURES, snapshot_id="20260630-lies", rows=len(FRAME) + 1)
    with pytest.raises(LoadIncomplete, match="expected"):
        materialize.materialize(osettings, "latest")
    assert store.live().id == live
    assert [v.id for v in store.versions()] == [live]


def test_cli_status_and_rollback(osettings, monkeypatch: pytest.MonkeyPatch):
    store = RedisOnlineStore(osettings)
    first, second = load(store, 1.0), load(store, 2.0)
    monkeypatch.setenv("CHURN_STATE_DIR", str(osettings.state_dir))
    monkeypatch.setenv("CHURN_REDIS__PORT", str(osettings.redis.port))
    monkeypatch.setenv("CHURN_REDIS__PASSWORD", osettings.redis.password)
    monkeypatch.setenv("CHURN_ONLINE__NAMESPACE", osettings.online.namespace)
    get_settings.cache_clear()
    runner = CliRunner()
    result = runner.invoke(typer_app(), ["--status"])
    assert result.exit_code == 0, result.output
    assert first in result.output and second in result.output and "live" in result.output
    result = runner.invoke(typer_app(), ["--rollback"])
    assert result.exit_code == 0, result.output
    assert f"{first} is live again" in result.output
    assert store.live().id == first and not math.isnan(store.live().created_at)


def typer_app():
    import typer

    app = typer.Typer()
    app.command()(materialize.command)
    return app
