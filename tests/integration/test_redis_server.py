"""``RedisServer`` against a real redis-server (no mocks): the server it starts (one per module
for the read-only checks), persistence across a restart, stopping, and what it refuses or leaves
alone: ports of foreign redis-servers, processes it did not start, an external REDIS_URL, a
server that dies while starting.

Every test uses its own tmp state dir and free ports (never 6379, which belongs to someone else on
this machine), and every process a test starts is stopped by a finalizer.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.processes import free_port
from core.settings import Settings
from ray_jobs.supervisors.redis_process import ServiceError
from ray_jobs.supervisors.redis_server import RedisServer

from support import SERVICES_PASSWORD as PASSWORD
from support import remove_churn_env

pytestmark = [pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
              pytest.mark.usefixtures("clean_env")]


def wait_ping(client: redis.Redis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def foreign_redis() -> Iterator[Callable[..., tuple[subprocess.Popen, int]]]:
    """Start redis-servers this project does not own (not via RedisServer), killed afterwards."""
    procs: list[subprocess.Popen] = []

    def start(password: str | None = None) -> tuple[subprocess.Popen, int]:
        port = free_port()
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no"]
        if password:
            cmd += ["--requirepass", password]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_ping(redis.Redis(port=port, password=password, socket_timeout=2))
        return proc, port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- the server it starts
@pytest.fixture(scope="module")
def started(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """One RedisServer started for the module's read-only checks (stopped at its end)."""
    with pytest.MonkeyPatch.context() as env:
        remove_churn_env(env)
        port = free_port()
        server = RedisServer(Settings(state_dir=tmp_path_factory.mktemp("redis-lifecycle"),
                                      redis={"host": "127.0.0.1", "port": port, "password": PASSWORD}))
        try:
            status = server.up()
            client = redis.Redis(port=port, password=PASSWORD, decode_responses=True)
            yield SimpleNamespace(server=server, port=port, status=status, client=client)
        finally:
            server.down()


def test_up_starts_a_healthy_owned_server_with_aof(started) -> None:
    st = started.status
    assert st.running and st.healthy and st.owned and st.aof is True
    assert st.pid == started.server.running_pid() and st.port == started.port
    assert started.server.status().healthy


def test_the_reported_url_has_no_password(started) -> None:
    st = started.status
    assert PASSWORD not in st.url and st.url == f"redis://127.0.0.1:{started.port}/0"


def test_a_client_with_the_password_is_answered(started) -> None:
    assert started.client.ping()


def test_a_client_without_the_password_is_refused(started) -> None:
    # NOAUTH is raised as AuthenticationError (redis-py strips the code); RESP2, as the RESP3
    # default fails one step earlier, on HELLO. No retries: they would only add backoff delays.
    anonymous = redis.Redis(port=started.port, protocol=2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        anonymous.ping()


def test_the_password_is_in_the_0600_conf_file_only_never_on_the_command_line(started) -> None:
    assert PASSWORD not in Path(f"/proc/{started.status.pid}/cmdline").read_bytes().decode()
    assert (started.server.conf_path.stat().st_mode & 0o777) == 0o600


def test_a_second_up_finds_it_already_running(started) -> None:
    again = started.server.up()
    assert again.pid == started.status.pid and "already running" in again.message


def test_the_server_runs_with_aof_everysec_and_no_rdb_in_its_dir(started) -> None:
    client = started.client
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("save") == {"save": ""}
    assert Path(client.config_get("dir")["dir"]) == started.server.dir


def test_data_survives_a_restart(make_server: Callable[..., RedisServer]) -> None:
    server = make_server()
    server.up()
    client = redis.Redis(port=server.cfg.port, password=PASSWORD, decode_responses=True)
    client.set("churn:survives", "yes")
    assert server.down() is True
    client.connection_pool.disconnect()
    server.up()
    assert client.get("churn:survives") == "yes"
    assert server.status().keys == 1


def test_down_stops_the_server_and_removes_its_pidfile(make_server: Callable[..., RedisServer]) -> None:
    server = make_server()
    server.up()
    assert server.down() is True
    st = server.status()
    assert not st.running and not st.healthy and st.pid is None
    assert not server.pidfile.exists()
    assert server.down() is False


# --------------------------------------------------------------------------- what it leaves alone
def test_refuses_port_held_by_foreign_redis(make_server, foreign_redis) -> None:
    proc, port = foreign_redis()
    server = make_server(port=port)
    with pytest.raises(ServiceError, match=rf"port {port}\b.*CHURN_REDIS__PORT"):
        server.up()
    st = server.status()
    assert not st.running and "held by another process" in st.message
    assert server.down() is False
    assert proc.poll() is None and redis.Redis(port=port).ping()


def test_never_signals_a_process_it_did_not_start(make_server, foreign_redis) -> None:
    """A pidfile naming someone else's process (pid reuse, tampering) is ignored, never signalled."""
    proc, foreign_port = foreign_redis()
    for pid in (proc.pid, os.getpid()):  # a redis-server on another port; a non-redis process
        server = make_server()
        server.dir.mkdir(parents=True, exist_ok=True)
        server.pidfile.write_text(f"{pid}\n")
        assert server.running_pid() is None
        assert server.down() is False
        assert not server.pidfile.exists()
    assert proc.poll() is None and redis.Redis(port=foreign_port).ping()


def test_external_redis_url_starts_nothing(make_server, foreign_redis, tmp_path: Path) -> None:
    proc, ext_port = foreign_redis(password="ext-pw")
    own_port = free_port()
    server = make_server(port=own_port, redis_url=f"redis://:ext-pw@127.0.0.1:{ext_port}/0")

    st = server.up()
    assert st.healthy and not st.owned and st.port == ext_port and st.pid == proc.pid
    assert "ext-pw" not in st.url and "ext-pw" not in st.message
    assert "nothing started" in st.message
    assert not server.dir.exists()  # no conf, no pidfile, no data
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", own_port))  # our own port stayed free
    assert server.status().healthy
    assert server.down() is False
    assert proc.poll() is None


def test_start_failure_reports_log_tail(make_server) -> None:
    """A server that dies while starting fails fast with the tail of its log."""
    server = make_server()
    manifest = server.dir / "appendonlydir" / "appendonly.aof.manifest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("this is not a manifest\n")
    started = time.monotonic()
    with pytest.raises(ServiceError, match=rf"(?s)port {server.cfg.port} did not become ready.*manifest"):
        server.up()
    assert time.monotonic() - started < 5
    assert server.running_pid() is None
