"""The project-owned ``redis-server`` (the embedded online feature store) that ``churn services`` runs.

``up`` starts a daemonized redis-server on ``settings.redis.port`` (6390 by default, never 6379)
with AOF persistence (``appendfsync everysec``) and RDB snapshots off, its config, data, pidfile and
log under ``<state_dir>/redis``. The password only lives in the generated ``redis.conf`` (mode 0600),
never on a command line. ``down`` stops only a process we started: the pid comes from our pidfile
and is verified through ``/proc/<pid>/cmdline`` before any signal is sent. When ``REDIS_URL`` is set
the commands manage nothing and only check that the external server answers.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.processes import FORBIDDEN_PORT, port_is_free, proc_alive, proc_cmdline
from core.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.05
# Callers poll themselves; redis-py's default retries (with backoff) would turn every refused
# connection, including the one SHUTDOWN closes, into seconds of waiting.
_CLIENT_OPTS: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


class ServiceError(RuntimeError):
    """A service could not be started, stopped or reached; the message says what to do."""


@dataclass
class Status:
    """What ``up``/``status`` report about the Redis in use."""

    running: bool
    pid: int | None
    url: str  # without the password
    owned: bool
    message: str
    healthy: bool = False
    port: int | None = None
    aof: bool | None = None
    used_memory: str | None = None
    keys: int | None = None


def redact_url(url: str) -> str:
    """``url`` with any password removed (``redis://:pw@h:1/0`` -> ``redis://h:1/0``)."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _conf_quote(value: str) -> str:
    """Quote a value for redis.conf (parsed like ``sdssplitargs``)."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same dir, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _probe(client: redis.Redis) -> dict:
    """PING then INFO through ``client``; raises ``redis.RedisError`` when it does not answer."""
    client.ping()
    info = client.info()
    keys = sum(v.get("keys", 0) for k, v in info.items() if re.fullmatch(r"db\d+", k))
    return {
        "pid": info.get("process_id"),
        "port": info.get("tcp_port"),
        "aof": bool(info.get("aof_enabled")),
        "used_memory": info.get("used_memory_human"),
        "keys": keys,
    }


class RedisServer:
    """The Redis of the platform: our own redis-server, or an external one (``REDIS_URL``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.redis
        self.dir = (Path(settings.state_dir) / "redis").absolute()
        self.conf_path = self.dir / "redis.conf"
        self.pidfile = self.dir / "redis.pid"
        self.logfile = self.dir / "redis.log"

    # ---------------------------------------------------------------- public API
    @property
    def url(self) -> str:
        """The Redis URL without the password."""
        return redact_url(self.settings.effective_redis_url)

    def up(self) -> Status:
        """Start our redis-server (idempotent), or check the external one answers."""
        if not self.settings.owns_redis:
            status = self._external_status()
            if not status.healthy:
                raise ServiceError(f"{status.message} (set by REDIS_URL)")
            status.message = f"using external Redis {status.url} (REDIS_URL); nothing started"
            return status
        self._check_port_allowed()
        pid = self.running_pid()
        if pid is not None:
            status = self.status()
            status.message = f"redis-server already running (pid {pid}) on port {self.cfg.port}"
            return status
        binary = self._binary()
        if not self._port_free():
            raise ServiceError(
                f"port {self.cfg.port} on {self.cfg.host} is already in use by a process this project "
                f"did not start; set CHURN_REDIS__PORT to a free port or stop the other process"
            )
        self._prepare_dir()
        log_offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        self._launch(binary)
        pid = self._wait_ready(log_offset)
        log.info("redis-server started", extra={"pid": pid, "port": self.cfg.port, "dir": str(self.dir)})
        status = self.status()
        status.message = f"redis-server started (pid {pid}) on port {self.cfg.port}"
        return status

    def down(self) -> bool:
        """Stop our redis-server; True if one was stopped, False if there was nothing to stop."""
        if not self.settings.owns_redis:
            log.info("REDIS_URL is set: the external Redis is not managed here")
            return False
        pid = self.running_pid()
        if pid is None:
            self._remove_stale_pidfile()
            return False
        self._shutdown(pid)
        if not self._wait_gone(pid, STOP_TIMEOUT_S):
            log.warning("redis-server ignored SHUTDOWN, sending SIGTERM", extra={"pid": pid})
            self._signal_ours(pid, signal.SIGTERM)
            if not self._wait_gone(pid, STOP_TIMEOUT_S):
                raise ServiceError(f"redis-server (pid {pid}) did not stop; see {self.logfile}")
        self.pidfile.unlink(missing_ok=True)
        log.info("redis-server stopped", extra={"pid": pid, "port": self.cfg.port})
        return True

    def status(self) -> Status:
        """Whether the Redis in use runs and answers PING, with a few vital signs."""
        if not self.settings.owns_redis:
            return self._external_status()
        pid = self.running_pid()
        base: dict[str, Any] = {"url": self.url, "owned": True, "port": self.cfg.port, "pid": pid}
        if pid is None:
            note = "" if self._port_free(strict=False) else (
                f"; port {self.cfg.port} is held by another process"
            )
            return Status(running=False, message=f"redis-server not running{note}", **base)
        try:
            info = _probe(self._client())
        except redis.RedisError as exc:
            return Status(running=True, message=f"redis-server (pid {pid}) does not answer: {exc}", **base)
        return Status(
            running=True, healthy=True, message=f"redis-server healthy (pid {pid})",
            aof=info["aof"], used_memory=info["used_memory"], keys=info["keys"], **base,
        )

    def running_pid(self) -> int | None:
        """The pid from our pidfile if that process is alive and is redis-server on our port."""
        if self.cfg.port == FORBIDDEN_PORT:
            return None
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    # ---------------------------------------------------------------- helpers
    def _client(self) -> redis.Redis:
        return redis.Redis(
            host=self.cfg.host, port=self.cfg.port, password=self.cfg.password, db=self.cfg.db,
            retry=_no_retry(), **_CLIENT_OPTS,
        )

    def _external_status(self) -> Status:
        url = self.url
        try:
            client = redis.Redis.from_url(self.settings.effective_redis_url, retry=_no_retry(), **_CLIENT_OPTS)
            info = _probe(client)
        except redis.RedisError as exc:
            return Status(running=False, pid=None, url=url, owned=False,
                          message=f"external Redis {url} does not answer: {exc}")
        return Status(
            running=True, healthy=True, pid=info["pid"], url=url, owned=False, port=info["port"],
            message=f"external Redis {url} healthy (REDIS_URL)", aof=info["aof"],
            used_memory=info["used_memory"], keys=info["keys"],
        )

    def _port_free(self, strict: bool = True) -> bool:
        """Whether our host:port can be bound; bind errors other than "in use" raise when strict."""
        try:
            return port_is_free(self.cfg.host, self.cfg.port)
        except OSError as exc:
            if not strict:
                return True
            raise ServiceError(
                f"cannot bind {self.cfg.host}:{self.cfg.port} ({exc.strerror}); check CHURN_REDIS__HOST"
            ) from exc

    def _check_port_allowed(self) -> None:
        if self.cfg.port == FORBIDDEN_PORT:
            raise ServiceError(
                f"refusing to manage a Redis on port {FORBIDDEN_PORT} (the default port of other Redis "
                f"servers); set CHURN_REDIS__PORT to another port (default 6390)"
            )

    @staticmethod
    def _binary() -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError(
                "redis-server not found on PATH; install it (e.g. `apt-get install redis-server`) "
                "or set REDIS_URL to an existing Redis"
            )
        return binary

    def _is_ours(self, pid: int) -> bool:
        """Alive, a redis-server, and listening on our port (or started from our conf)."""
        if not proc_alive(pid):
            return False
        cmdline = proc_cmdline(pid)
        if "redis-server" not in cmdline:
            return False
        return bool(re.search(rf":{self.cfg.port}\b", cmdline)) or str(self.conf_path) in cmdline

    def _signal_ours(self, pid: int, sig: signal.Signals) -> None:
        """Send ``sig`` to ``pid`` only after re-verifying it is our redis-server."""
        if self._is_ours(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _remove_stale_pidfile(self) -> None:
        if self.pidfile.exists():
            log.info("removing stale pidfile", extra={"pidfile": str(self.pidfile)})
            self.pidfile.unlink(missing_ok=True)

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._remove_stale_pidfile()
        _write_atomic(self.conf_path, self._conf_text(), mode=0o600)

    def _conf_text(self) -> str:
        """redis.conf of our server: AOF everysec, no RDB snapshots, protected, daemonized."""
        lines = [
            "# Generated by `churn services up`; rewritten on every start. Do not edit.",
            f"bind {self.cfg.host}",
            f"port {self.cfg.port}",
            "protected-mode yes",
            f"requirepass {_conf_quote(self.cfg.password)}",
            "daemonize yes",
            f"dir {_conf_quote(str(self.dir))}",
            f"pidfile {_conf_quote(str(self.pidfile))}",
            f"logfile {_conf_quote(str(self.logfile))}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"databases {max(16, self.cfg.db + 1)}",
        ]
        return "\n".join(lines) + "\n"

    def _launch(self, binary: str) -> None:
        """Run redis-server on the conf file; it daemonizes, so this returns at once."""
        proc = subprocess.run(
            [binary, str(self.conf_path)], capture_output=True, text=True, timeout=START_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip() or _tail(self.logfile)
            raise ServiceError(f"redis-server failed to start (exit {proc.returncode}):\n{out}")

    def _daemon_pid_from_log(self, offset: int) -> int | None:
        """The pid of the daemon started after ``offset`` in the log (from its first line)."""
        try:
            with self.logfile.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            return None
        match = re.search(r"^(\d+):\w .*Redis is starting", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _wait_ready(self, log_offset: int) -> int:
        """Wait until the new server wrote its pidfile and answers PING; return its pid."""
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self._client()
        last_error = "no pidfile yet"
        while time.monotonic() < deadline:
            pid = self.running_pid()
            if pid is not None:
                try:
                    if _probe(client)["pid"] == pid:
                        return pid
                    last_error = f"port {self.cfg.port} answered from another pid"
                except redis.RedisError as exc:
                    last_error = str(exc)
            else:
                daemon = self._daemon_pid_from_log(log_offset)
                if daemon is not None and not proc_alive(daemon):
                    last_error = f"redis-server (pid {daemon}) exited"
                    break
            time.sleep(_POLL_S)
        raise ServiceError(
            f"redis-server on port {self.cfg.port} did not become ready ({last_error}); "
            f"last lines of {self.logfile}:\n{_tail(self.logfile)}"
        )

    def _shutdown(self, pid: int) -> None:
        """Ask our server to SHUTDOWN (it fsyncs the AOF); fall back to SIGTERM."""
        try:
            self._client().shutdown()
        except redis.RedisError as exc:
            log.warning("SHUTDOWN failed, sending SIGTERM", extra={"pid": pid, "error": str(exc)})
            self._signal_ours(pid, signal.SIGTERM)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._is_ours(pid):
                return True
            time.sleep(_POLL_S)
        return False
