"""The embedded Redis with automatic failover (``churn services up --ha``), on real processes: a
primary, two replicas and three Sentinels on loopback ports, a generated password every one of
them requires, readers that keep answering while the primary is SIGKILLed, and loads that either
complete on the new primary or leave the live version untouched."""
from __future__ import annotations

import asyncio
import shutil
import signal
import stat
import time

import numpy as np
import pytest
import redis

from core.processes import port_is_free, proc_alive
from core.redis_target import redis_target
from core.settings import Settings
from features.online.interface import OnlineStoreError
from features.online.redis_layout import redis_client
from features.online.redis_reader import RedisOnlineReader
from features.online.redis_writer import RedisOnlineStore
from ray_jobs.supervisors.redis_process import plain_client
from ray_jobs.supervisors.redis_server import RedisServer

from _online import FEATURES, IDS, load

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_env"),
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]

DOWN_AFTER_MS = 1000


def free_ports(count: int, start: int) -> int:
    """The first port from ``start`` on where ``count`` consecutive loopback ports are free."""
    port = start
    while not all(port_is_free("127.0.0.1", p) for p in range(port, port + count)):
        port += count
    return port


@pytest.fixture
def ha(tmp_path):
    """A fresh HA Redis (no password in the settings: the generated one), stopped afterwards."""
    settings = Settings(state_dir=tmp_path, redis_url=None, mlflow_tracking_uri=None,
                        redis={"port": free_ports(3, 16390), "sentinel_port": free_ports(3, 26490),
                               "down_after_ms": DOWN_AFTER_MS, "failover_timeout_ms": 5000},
                        online={"socket_timeout_s": 1.0, "pointer_ttl_s": 0.2})
    server = RedisServer(settings)
    server.up(ha=True)
    try:
        yield server
    finally:
        server.down()


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := condition()):
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout_s} s")


def replicas_synced(server: RedisServer) -> bool:
    info = server.process("redis").client().info("replication")
    return info["connected_slaves"] == 2 and all(info[f"slave{k}"]["state"] == "online" for k in range(2))


def test_the_generated_password_is_readable_by_its_owner_only(ha):
    path = ha.dir / "password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(ha.dir.stat().st_mode) == 0o700
    assert len(path.read_text().strip()) >= 24 and redis_target(ha.settings).password == path.read_text().strip()


@pytest.mark.parametrize("member", ["redis", "replica-1", "sentinel-1"])
def test_every_process_refuses_a_client_without_the_password(ha, member):
    inst = ha.process(member).instance
    with pytest.raises(redis.AuthenticationError):
        plain_client(inst.host, inst.port, password=None).ping()


def test_up_ha_runs_a_primary_two_replicas_and_three_sentinels(ha):
    roles = [line.split()[-1] for line in ha.status().members]
    assert roles == ["master", "slave", "slave", "sentinel", "sentinel", "sentinel"]
    assert ha.current_primary() == ("127.0.0.1", ha.cfg.port)
    wait_for(lambda: replicas_synced(ha), 20, "both replicas in sync")


def test_a_second_up_finds_everything_running(ha):
    assert "already running" in ha.up(ha=True).message


def test_down_stops_every_process_and_clients_stop_looking_for_sentinels(ha):
    pids = [ha.process(name).running_pid() for name in ("redis", "replica-1", "replica-2", "sentinel-1")]
    assert ha.down() is True
    assert all(p is not None and not proc_alive(p) for p in pids)
    assert redis_target(ha.settings).sentinels == ()


def test_a_replica_killed_under_reads_changes_nothing(ha):
    store = RedisOnlineStore(ha.settings)
    load(store, 1.0)
    wait_for(lambda: replicas_synced(ha), 20, "both replicas in sync")
    outcome = read_under(ha.settings, lambda: ha.process("replica-1").signal(signal.SIGKILL), seconds=3)
    assert outcome.failures == [] and outcome.reads > 50 and outcome.stamps == {1.0}
    assert ha.current_primary() == ("127.0.0.1", ha.cfg.port)


def test_the_primary_killed_under_reads_fails_over_without_a_failed_read_or_a_mixed_version(ha):
    store = RedisOnlineStore(ha.settings)
    load(store, 1.0)
    load(store, 2.0)
    wait_for(lambda: replicas_synced(ha), 20, "both replicas in sync")
    unavailable_for_writes: list[float] = []

    def kill_primary_and_time_the_promotion() -> None:
        killed_at = time.monotonic()
        ha.process("redis").signal(signal.SIGKILL)
        writes_back = wait_for(lambda: _writes(ha.settings), 15, "writes accepted by a new primary")
        unavailable_for_writes.append(writes_back - killed_at)

    outcome = read_under(ha.settings, kill_primary_and_time_the_promotion, seconds=1)
    assert outcome.failures == [], outcome.failures[:3]
    assert outcome.stamps == {2.0}  # every batch whole, from the live version
    assert ha.current_primary()[1] in (ha.cfg.port + 1, ha.cfg.port + 2)
    # Writes need the primary: refused from the kill until Sentinel's detection and promotion.
    assert DOWN_AFTER_MS / 1000 < unavailable_for_writes[0] < DOWN_AFTER_MS / 1000 + 4, unavailable_for_writes
    assert load(RedisOnlineStore(ha.settings), 3.0)
    assert read_under(ha.settings, lambda: None, seconds=1).stamps == {3.0}


def test_a_load_cut_by_a_failover_fails_and_leaves_the_live_version_whole(ha):
    store = RedisOnlineStore(ha.settings)
    live = load(store, 1.0)
    wait_for(lambda: replicas_synced(ha), 20, "both replicas in sync")
    version = store.begin(FEATURES, source="cut")
    store.put_many(version.id, IDS[:250], np.full((250, len(FEATURES)), 9.0, dtype=np.float32))
    ha.process("redis").signal(signal.SIGKILL)
    with pytest.raises((redis.RedisError, OnlineStoreError)):
        store.put_many(version.id, IDS[250:], np.full((len(IDS) - 250, len(FEATURES)), 9.0, dtype=np.float32))
        store.flip(version.id, expected_rows=len(IDS))
    wait_for(lambda: _writes(ha.settings), 15, "writes accepted by the new primary")
    assert RedisOnlineStore(ha.settings).live().id == live
    assert read_under(ha.settings, lambda: None, seconds=1).stamps == {1.0}


# --------------------------------------------------------------------------- helpers
class Outcome:
    def __init__(self) -> None:
        self.reads = 0
        self.failures: list[str] = []
        self.stamps: set[float] = set()


def read_under(settings: Settings, event, seconds: float) -> Outcome:
    """Four concurrent readers of 50 customers each, for ``seconds``; ``event()`` after 0.5 s."""
    outcome = Outcome()

    async def reader(k: int, stop: asyncio.Event) -> None:
        online = RedisOnlineReader(settings)
        try:
            while not stop.is_set():
                try:
                    rows = await online.get_many(IDS[k * 50:(k + 1) * 50])
                except Exception as exc:  # a failed read is what this test counts
                    outcome.failures.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.01)
                    continue
                outcome.reads += 1
                assert rows.found.all()
                outcome.stamps.update(np.unique(rows.values).tolist())
                await asyncio.sleep(0.005)
        finally:
            await online.close()

    async def scenario() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(reader(k, stop)) for k in range(4)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(event)
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    return outcome


def _writes(settings: Settings) -> float | None:
    """The time a write through Sentinel's primary succeeded, or None while none is accepted."""
    try:
        redis_client(settings, timeout_s=1.0).set("churn:ha-probe", "1")
        return time.monotonic()
    except redis.RedisError:
        return None
