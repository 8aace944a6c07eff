"""What ``RedisServer.up`` refuses before it starts anything (no redis-server is started): a port
held by someone else, port 6379, an unreachable external REDIS_URL, a missing redis-server
binary, a host that is not local."""
from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from core.processes import free_port
from ray_jobs.supervisors.redis_process import ServiceError

pytestmark = pytest.mark.usefixtures("clean_env")
needs_redis_binary = pytest.mark.skipif(shutil.which("redis-server") is None,
                                        reason="redis-server not installed (up() looks for it first)")


@needs_redis_binary
def test_refuses_port_held_by_plain_socket(make_server) -> None:
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


def test_external_redis_url_unreachable(make_server) -> None:
    server = make_server(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ServiceError, match="does not answer"):
        server.up()
    assert not server.status().healthy


def test_refuses_port_6379(make_server) -> None:
    server = make_server(port=6379)
    with pytest.raises(ServiceError, match=r"6379.*CHURN_REDIS__PORT"):
        server.up()
    assert server.running_pid() is None and not server.dir.exists()


def test_missing_redis_server(make_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server = make_server()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ServiceError, match="apt-get install redis-server"):
        server.up()


@needs_redis_binary
def test_host_not_local(make_server) -> None:
    server = make_server(host="192.0.2.1")  # TEST-NET-1: never a local address
    with pytest.raises(ServiceError, match=r"cannot bind 192\.0\.2\.1.*CHURN_REDIS__HOST"):
        server.up()
