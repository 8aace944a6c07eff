"""``ray_jobs.services`` against a real redis-server (no mocks).

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

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from typer.testing import CliRunner

from core.processes import free_port
from core.settings import Settings, get_settings
from ray_jobs import services
from ray_jobs.supervisors.redis_server import RedisServer, ServiceError

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")

PASSWORD = "s3cr3t-pw"


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


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REDIS_URL / CHURN_* from the caller's shell leaks into the settings of a test."""
    for name in list(os.environ):
        if name.startswith("CHURN_") or name == "REDIS_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Build RedisServers on tmp state dirs; stops whatever they started afterwards."""
    created: list[RedisServer] = []

    def make(port: int | None = None, host: str = "127.0.0.1", **kwargs) -> RedisServer:
        settings = Settings(
            state_dir=tmp_path / f"state{len(created)}",
            redis={"host": host, "port": port or free_port(), "password": PASSWORD},
            **kwargs,
        )
        server = RedisServer(settings)
        created.append(server)
        return server

    yield make
    for server in created:
        server.down()


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


def test_lifecycle(make_server: Callable[..., RedisServer]) -> None:
    server = make_server()
    port = server.cfg.port

    st = server.up()
    assert st.running and st.healthy and st.owned and st.aof is True
    assert st.pid == server.running_pid() and st.port == port
    assert PASSWORD not in st.url and st.url == f"redis://127.0.0.1:{port}/0"
    assert server.status().healthy

    client = redis.Redis(port=port, password=PASSWORD, decode_responses=True)
    assert client.ping()
    # NOAUTH is raised as AuthenticationError (redis-py strips the code); RESP2, as the RESP3
    # default fails one step earlier, on HELLO. No retries: they would only add backoff delays.
    anonymous = redis.Redis(port=port, protocol=2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        anonymous.ping()

    # the password is in the 0600 conf file only, never on the command line
    assert PASSWORD not in Path(f"/proc/{st.pid}/cmdline").read_bytes().decode()
    assert (server.conf_path.stat().st_mode & 0o777) == 0o600

    again = server.up()
    assert again.pid == st.pid and "already running" in again.message

    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("save") == {"save": ""}
    assert Path(client.config_get("dir")["dir"]) == server.dir

    client.set("churn:survives", "yes")
    assert server.down() is True
    client.connection_pool.disconnect()
    server.up()
    assert client.get("churn:survives") == "yes"
    assert server.status().keys == 1

    assert server.down() is True
    st = server.status()
    assert not st.running and not st.healthy and st.pid is None
    assert not server.pidfile.exists()
    assert server.down() is False


def test_refuses_port_held_by_plain_socket(make_server: Callable[..., RedisServer]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = make_server(port=port)
        with pytest.raises(ServiceError, match=rf"port {port}\b.*CHURN_REDIS__PORT"):
            server.up()
        assert server.running_pid() is None
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the foreign listener is untouched


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


def test_external_redis_url_unreachable(make_server) -> None:
    server = make_server(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ServiceError, match="does not answer"):
        server.up()
    assert not server.status().healthy


def test_refuses_port_6379(make_server) -> None:
    server = make_server(port=6379)
    with pytest.raises(ServiceError, match="6379.*CHURN_REDIS__PORT"):
        server.up()
    assert server.running_pid() is None and not server.dir.exists()


def test_missing_redis_server(make_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server = make_server()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ServiceError, match="apt-get install redis-server"):
        server.up()


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


def test_host_not_local(make_server) -> None:
    server = make_server(host="192.0.2.1")  # TEST-NET-1: never a local address
    with pytest.raises(ServiceError, match="cannot bind 192.0.2.1.*CHURN_REDIS__HOST"):
        server.up()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """CHURN_* env for the CLI; ``get_settings()`` is lru_cached, so clear it before and after."""
    monkeypatch.setenv("CHURN_STATE_DIR", str(tmp_path / "cli-state"))
    monkeypatch.setenv("CHURN_REDIS__PORT", str(free_port()))
    monkeypatch.setenv("CHURN_REDIS__PASSWORD", PASSWORD)
    get_settings.cache_clear()
    settings = get_settings()
    yield settings
    RedisServer(settings).down()
    get_settings.cache_clear()


def test_cli(cli_env: Settings) -> None:
    runner = CliRunner()
    port = cli_env.redis.port

    result = runner.invoke(services.app, ["up"])
    assert result.exit_code == 0, result.output
    assert "started" in result.output and str(port) in result.output
    assert PASSWORD not in result.output

    result = runner.invoke(services.app, ["up"])
    assert result.exit_code == 0 and "already running" in result.output

    result = runner.invoke(services.app, ["status"])
    assert result.exit_code == 0 and "healthy" in result.output and "aof=on" in result.output

    result = runner.invoke(services.app, ["down"])
    assert result.exit_code == 0 and "stopped" in result.output

    result = runner.invoke(services.app, ["status"])
    assert result.exit_code == 1 and "not running" in result.output

    result = runner.invoke(services.app, ["down"])
    assert result.exit_code == 0 and "nothing to stop" in result.output
