"""One daemonized ``redis-server`` (a data node or, with ``--sentinel``, a Sentinel) that this
project starts and stops: its files, its start, its stop, its vital signs.

Its config, pidfile and log live in the instance's own folder; the password only lives in the
config (mode 0600), never on a command line. ``stop`` signals only a process we started: the pid
comes from our pidfile and is verified through ``/proc/<pid>/cmdline`` before any signal is sent.
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

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.processes import proc_alive, proc_cmdline

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.05
# Callers poll themselves; redis-py's default retries (with backoff) would turn every refused
# connection, including the one SHUTDOWN closes, into seconds of waiting.
_CLIENT_OPTS: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}


class ServiceError(RuntimeError):
    """A service could not be started, stopped or reached; the message says what to do."""


def plain_client(host: str, port: int, password: str | None, db: int = 0) -> redis.Redis:
    """A client that fails at once instead of retrying."""
    return redis.Redis(host=host, port=port, password=password, db=db, retry=Retry(NoBackoff(), 0), **_CLIENT_OPTS)


def probe(client: redis.Redis) -> dict[str, Any]:
    """PING then INFO through ``client``; raises ``redis.RedisError`` when it does not answer."""
    client.ping()
    info = client.info()
    keys = sum(v.get("keys", 0) for k, v in info.items() if re.fullmatch(r"db\d+", k))
    return {
        "pid": info.get("process_id"),
        "port": info.get("tcp_port"),
        "role": info.get("role", "sentinel" if "sentinel_masters" in info else None),
        "aof": bool(info.get("aof_enabled")),
        "used_memory": info.get("used_memory_human"),
        "keys": keys,
    }


def conf_quote(value: str) -> str:
    """Quote a value for redis.conf (parsed like ``sdssplitargs``)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
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


@dataclass(frozen=True)
class Instance:
    """Where one process listens and keeps its files (``<dir>/<name>.conf|.pid|.log``)."""

    name: str
    host: str
    port: int
    dir: Path
    sentinel: bool = False

    @property
    def conf_path(self) -> Path:
        return self.dir / f"{self.name}.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def kind(self) -> str:
        return "redis-sentinel" if self.sentinel else "redis-server"


class RedisProcess:
    """Start, stop and look at one of our redis-server processes."""

    def __init__(self, instance: Instance, password: str | None) -> None:
        self.instance = instance
        self.password = password

    def client(self) -> redis.Redis:
        return plain_client(self.instance.host, self.instance.port, self.password)

    def running_pid(self) -> int | None:
        """The pid from our pidfile if that process is alive and is ours on our port."""
        try:
            pid = int(self.instance.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    def start(self, conf_text: str, rewrite: bool = True) -> int:
        """Write the config (unless it exists and ``rewrite`` is off: Sentinel and failovers keep
        their state in it), launch, and wait until it answers; return its pid."""
        inst = self.instance
        inst.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if inst.pidfile.exists():
            inst.pidfile.unlink(missing_ok=True)  # stale: start() is only called when not running
        if rewrite or not inst.conf_path.exists():
            write_atomic(inst.conf_path, conf_text, mode=0o600)
        log_offset = inst.logfile.stat().st_size if inst.logfile.exists() else 0
        self._launch()
        pid = self._wait_ready(log_offset)
        log.info(f"{inst.kind} started", extra={"pid": pid, "port": inst.port, "dir": str(inst.dir)})
        return pid

    def stop(self) -> bool:
        """SHUTDOWN (a data node fsyncs its AOF), SIGTERM if ignored; False if it was not running."""
        pid = self.running_pid()
        if pid is None:
            self.instance.pidfile.unlink(missing_ok=True)
            return False
        try:
            self.client().shutdown()
        except redis.RedisError as exc:
            log.warning("SHUTDOWN failed, sending SIGTERM", extra={"pid": pid, "error": str(exc)})
            self.signal(signal.SIGTERM)
        if not self._wait_gone(pid, STOP_TIMEOUT_S):
            log.warning(f"{self.instance.kind} ignored SHUTDOWN, sending SIGTERM", extra={"pid": pid})
            self.signal(signal.SIGTERM)
            if not self._wait_gone(pid, STOP_TIMEOUT_S):
                raise ServiceError(f"{self.instance.kind} (pid {pid}) did not stop; see {self.instance.logfile}")
        self.instance.pidfile.unlink(missing_ok=True)
        log.info(f"{self.instance.kind} stopped", extra={"pid": pid, "port": self.instance.port})
        return True

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` only after re-verifying the process is ours."""
        pid = self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # ---------------------------------------------------------------- helpers
    def _is_ours(self, pid: int) -> bool:
        """Alive, a redis-server, and listening on our port (or started from our conf)."""
        if not proc_alive(pid):
            return False
        cmdline = proc_cmdline(pid)
        if "redis-server" not in cmdline and "redis-sentinel" not in cmdline:
            return False
        return bool(re.search(rf":{self.instance.port}\b", cmdline)) or str(self.instance.conf_path) in cmdline

    def _launch(self) -> None:
        """Run redis-server on the conf file; it daemonizes, so this returns at once."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError(
                "redis-server not found on PATH; install it (e.g. `apt-get install redis-server`) "
                "or set REDIS_URL to an existing Redis"
            )
        cmd = [binary, str(self.instance.conf_path), *(["--sentinel"] if self.instance.sentinel else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip() or _tail(self.instance.logfile)
            raise ServiceError(f"{self.instance.kind} failed to start (exit {proc.returncode}):\n{out}")

    def _daemon_pid_from_log(self, offset: int) -> int | None:
        """The pid of the daemon started after ``offset`` in the log (from its first line)."""
        try:
            with self.instance.logfile.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            return None
        match = re.search(r"^(\d+):\w .*Redis is starting", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _wait_ready(self, log_offset: int) -> int:
        """Wait until the new process wrote its pidfile and answers PING; return its pid."""
        inst = self.instance
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.client()
        last_error = "no pidfile yet"
        while time.monotonic() < deadline:
            pid = self.running_pid()
            if pid is not None:
                try:
                    if probe(client)["pid"] == pid:
                        return pid
                    last_error = f"port {inst.port} answered from another pid"
                except redis.RedisError as exc:
                    last_error = str(exc)
            else:
                daemon = self._daemon_pid_from_log(log_offset)
                if daemon is not None and not proc_alive(daemon):
                    last_error = f"{inst.kind} (pid {daemon}) exited"
                    break
            time.sleep(_POLL_S)
        raise ServiceError(
            f"{inst.kind} on port {inst.port} did not become ready ({last_error}); "
            f"last lines of {inst.logfile}:\n{_tail(inst.logfile)}"
        )

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._is_ours(pid):
                return True
            time.sleep(_POLL_S)
        return False
