"""The online feature store against a real redis-server: versioned loads, the atomic flip,
pruning, rollback, failed loads, readers during flips, vectors of another layout, and the
`materialize` command's status and rollback. One redis-server per module."""
from __future__ import annotations

import asyncio
import math
import shutil
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from core.settings import get_settings
from features.feature_set import SchemaMismatch
from features.online.codec import encode_rows, schema_tag
from features.online.interface import LoadIncomplete, NoLiveVersion, OnlineStoreError
from features.online.redis_reader import RedisOnlineReader
from features.online.redis_writer import RedisOnlineStore
from ray_jobs import materialize as materialize_step

from _online import FEATURES, IDS, load, online_settings, read_rows, vector_keys

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]


def _states(store: RedisOnlineStore) -> dict[str, str]:
    return {v.id: v.state for v in store.versions()}


# --------------------------------------------------------------------------- three loads, a rollback
@pytest.fixture(scope="module")
def lifecycle(redis_server, tmp_path_factory) -> dict:
    """One store taken through three loads and a rollback, with what it showed after each step."""
    settings = online_settings(tmp_path_factory.mktemp("lifecycle"), redis_server.cfg.port,
                               online={"namespace": "lifecycle:fv", "pointer_ttl_s": 0.01})
    store = RedisOnlineStore(settings)
    seen: dict = {"live_before_any_load": store.live()}
    v1 = load(store, 1.0)
    v2 = load(store, 2.0)
    seen.update(v1=v1, v2=v2, live_after_two=store.live().id, states_after_two=_states(store))
    v3 = load(store, 3.0)
    seen.update(v3=v3, states_after_three=_states(store),
                keys_after_three={v: vector_keys(store, v) for v in (v1, v2, v3)})
    rolled = store.rollback()
    seen.update(rolled=rolled.id, live_after_rollback=store.live().id, states_after_rollback=_states(store))
    seen["rows"] = read_rows(settings, [IDS[0], "nobody", IDS[-1]])
    return seen


def test_an_empty_store_has_no_live_version(lifecycle):
    assert lifecycle["live_before_any_load"] is None


def test_a_flip_makes_the_new_version_live_and_the_old_one_previous(lifecycle):
    v1, v2 = lifecycle["v1"], lifecycle["v2"]
    assert lifecycle["live_after_two"] == v2
    assert lifecycle["states_after_two"] == {v1: "previous", v2: "live"}


def test_a_third_load_removes_the_versions_older_than_the_previous_one(lifecycle):
    v1, v2, v3 = lifecycle["v1"], lifecycle["v2"], lifecycle["v3"]
    keys = lifecycle["keys_after_three"]
    assert lifecycle["states_after_three"] == {v2: "previous", v3: "live"}
    assert keys[v1] == 0  # older than previous: removed
    assert keys[v2] == keys[v3] == len(IDS)


def test_rollback_makes_the_previous_version_live_again(lifecycle):
    v2, v3 = lifecycle["v2"], lifecycle["v3"]
    assert lifecycle["rolled"] == v2 and lifecycle["live_after_rollback"] == v2
    assert lifecycle["states_after_rollback"] == {v2: "live", v3: "previous"}


def test_readers_get_the_rolled_back_values_and_which_ids_are_missing(lifecycle):
    rows = lifecycle["rows"]
    assert rows.version.id == lifecycle["v2"] and rows.found.tolist() == [True, False, True]
    assert (rows.values[[0, 2]] == 2.0).all() and np.isnan(rows.values[1]).all()


# --------------------------------------------------------------------------- an incomplete load
def _refused_half_load(store: RedisOnlineStore):
    """A published version, and a new one holding 100 of its 500 rows whose flip was refused."""
    live = load(store, 1.0)
    version = store.begin(FEATURES, source="half")
    store.put_many(version.id, IDS[:100], np.zeros((100, len(FEATURES)), dtype=np.float32))
    with pytest.raises(LoadIncomplete, match="100 rows confirmed, 500 expected"):
        store.flip(version.id, expected_rows=len(IDS))
    return live, version


def test_incomplete_load_is_never_published(osettings):
    store = RedisOnlineStore(osettings)
    live, _ = _refused_half_load(store)
    assert store.live().id == live


def test_an_aborted_load_leaves_neither_keys_nor_a_version(osettings):
    store = RedisOnlineStore(osettings)
    live, version = _refused_half_load(store)
    store.abort(version.id)
    assert store.live().id == live
    assert vector_keys(store, version.id) == 0 and version.id not in {v.id for v in store.versions()}


def test_an_aborted_version_cannot_be_flipped(osettings):
    store = RedisOnlineStore(osettings)
    _, version = _refused_half_load(store)
    store.abort(version.id)
    with pytest.raises(OnlineStoreError, match="does not exist"):
        store.flip(version.id, expected_rows=100)


# --------------------------------------------------------------------------- readers
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


def test_no_live_version_is_a_clear_error(osettings):
    async def read():
        reader = RedisOnlineReader(osettings)
        try:
            await reader.get_many(IDS[:1])
        finally:
            await reader.close()

    with pytest.raises(NoLiveVersion, match="churn materialize"):
        asyncio.run(read())


# --------------------------------------------------------------------------- the materialize command
@pytest.fixture
def cli_store(osettings, monkeypatch: pytest.MonkeyPatch):
    """Two published versions, and the CLI's environment pointing at them."""
    store = RedisOnlineStore(osettings)
    first, second = load(store, 1.0), load(store, 2.0)
    monkeypatch.setenv("CHURN_STATE_DIR", str(osettings.state_dir))
    monkeypatch.setenv("CHURN_REDIS__PORT", str(osettings.redis.port))
    monkeypatch.setenv("CHURN_REDIS__PASSWORD", osettings.redis.password)
    monkeypatch.setenv("CHURN_ONLINE__NAMESPACE", osettings.online.namespace)
    get_settings.cache_clear()
    return store, first, second


def typer_app():
    import typer

    app = typer.Typer()
    app.command()(materialize_step.command)
    return app


def test_cli_status_lists_the_versions_and_the_live_one(cli_store):
    _, first, second = cli_store
    result = CliRunner().invoke(typer_app(), ["--status"])
    assert result.exit_code == 0, result.output
    assert first in result.output and second in result.output and "live" in result.output


def test_cli_rollback_makes_the_previous_version_live(cli_store):
    store, first, _ = cli_store
    result = CliRunner().invoke(typer_app(), ["--rollback"])
    assert result.exit_code == 0, result.output
    assert f"{first} is live again" in result.output
    assert store.live().id == first and not math.isnan(store.live().created_at)
