"""Local processes and ports: what the supervisors (the project's Redis, the Ray head) and the
tests need to find free ports and to check a pid before they signal it."""
from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

FORBIDDEN_PORT = 6379
"""Someone else's Redis lives there: never bind, connect to or signal it."""


def free_port() -> int:
    """A currently free loopback port (never ``FORBIDDEN_PORT``)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != FORBIDDEN_PORT:
            return port


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (checked by binding it).

    Only "address in use" counts as taken; other bind errors (host not local) are raised.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _live_stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first); None when the
    process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if fields[0] not in ("Z", "X") else None


def proc_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    return _live_stat_fields(pid) is not None


def proc_session(pid: int) -> int | None:
    """The session id of a live ``pid``."""
    fields = _live_stat_fields(pid)
    return int(fields[3]) if fields is not None else None


def proc_cmdline(pid: int) -> str:
    """The command line of ``pid`` with NULs as spaces ('' when unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def session_pids(session_id: int) -> list[int]:
    """Every live process of a session, this one excepted."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if pid != os.getpid() and proc_session(pid) == session_id]
