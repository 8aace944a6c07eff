"""A detached local Ray head for the prediction service, in a session of its own.

Throughput-optimised Serve (``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``: replicas answer HTTP on their own
ports) behind HAProxy (``RAY_SERVE_ENABLE_HA_PROXY=1``: one stable route on ``CHURN_SERVE__PORT``)
is configured by flags read when Ray starts, hence a head of its own. Its settings are the
caller's (passed as ``CHURN_*`` variables), its ports are free ones (several clusters can share a
machine) and ``stop`` signals only the processes of that head's session, verified first.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.processes import free_port, proc_cmdline, session_pids
from core.ray_session import START_ATTEMPTS
from core.settings import Settings, settings_env
from serve_app.haproxy_wrapper import write_wrapper

log = logging.getLogger(__name__)

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
# How Serve must run wherever Ray starts (this head; the RayService's pods on Kubernetes, kept
# equal by the deploy tests): replicas answer HTTP themselves behind HAProxy, Ray's workers run at
# normal priority (Ray's default nice 15 puts the replicas, which are the workload, below every
# daemon), HAProxy's per-request metrics (parsed in Python, on the replicas' CPU) are off, and
# metrics reach the node's agent every second, in small exports rather than large bursts, and a
# request whose replica died before answering (refused, closed, cut short) is sent to another
# replica: every route is a read, so repeating one is harmless. HAProxy itself runs through
# serve_app.haproxy_wrapper (RAY_SERVE_HAPROXY_BINARY_PATH, a path of each machine's own) so that
# the whole request is buffered and can be replayed.
CLUSTER_FLAGS = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_worker_niceness": "0",
    "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
    "RAY_metrics_report_interval_ms": "1000",
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response junk-response",
}
# A small machine's additions: more time for HAProxy's manager actor to start on a busy node (the
# controller kills a proxy that misses its ready check), and no more HAProxy threads than cores.
SERVE_FLAGS = {
    **CLUSTER_FLAGS,
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_HAPROXY_NBTHREAD": str(min(4, os.cpu_count() or 1)),
}
# Fixed default ports of a Ray head and of Serve's HAProxy, given free ones per cluster.
_PORT_ENV = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT",
             "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")


class ServeError(RuntimeError):
    """The service could not be deployed, reached or stopped; the message says why."""


@dataclass
class HeadState:
    """What ``down`` needs to find our head again (``<state_dir>/serve/head.json``)."""

    address: str
    session_id: int
    temp_dir: str
    metrics_port: int
    auth_token: str  # Ray token authentication of this head (clients pass it as RAY_AUTH_TOKEN)

    @property
    def client_env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.auth_token, "RAY_ADDRESS": self.address}


class RayHead:
    """A detached local Ray head started by ``churn serve`` in a session of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = (Path(settings.state_dir) / "serve").absolute()
        self.state_file = self.dir / "head.json"

    def state(self) -> HeadState | None:
        """Our head if it still runs (its session holds a raylet under our temp dir)."""
        try:
            state = HeadState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return state if self._owned_pids(state) else None

    def start(self, attempts: int = START_ATTEMPTS) -> HeadState:
        """Our running head, or a new one. Ray gives a new node 30 s to register, which a busy
        machine can miss (see ``runtime.init_with_retry``): more attempts then."""
        running = self.state()
        if running:
            return running
        for _ in range(attempts - 1):
            try:
                return self._start()
            except ServeError as exc:
                log.warning("ray head did not start; retrying", extra={"error": str(exc)[-300:]})
        return self._start()

    def _start(self) -> HeadState:
        self.dir.mkdir(parents=True, exist_ok=True)
        gcs_port, metrics_port = free_port(), free_port()
        temp_dir = tempfile.mkdtemp(prefix="churn-ray-")  # short: Ray's socket paths must stay < 108 chars
        token = secrets.token_hex(32)
        haproxy = write_wrapper(self.dir / "haproxy")
        env = {**os.environ, **settings_env(self.settings), **SERVE_FLAGS, "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": token, "RAY_SERVE_HAPROXY_BINARY_PATH": str(haproxy),
               **{name: str(free_port()) for name in _PORT_ENV}}
        cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={gcs_port}",
               f"--temp-dir={temp_dir}", "--include-dashboard=false", "--disable-usage-stats",
               f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={metrics_port}",
               f"--ray-client-server-port={free_port()}"]
        if self.settings.serve.ray_cpus:
            cmd.append(f"--num-cpus={self.settings.serve.ray_cpus}")
        log_path = self.dir / "ray-start.log"
        with log_path.open("w") as out:  # a file, not a pipe: the daemons it starts would hold a pipe open
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # its pid is the session id of the whole head
        try:
            proc.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        state = HeadState(f"127.0.0.1:{gcs_port}", proc.pid, temp_dir, metrics_port, token)
        if proc.returncode != 0 or not self._owned_pids(state):
            self._kill(state)
            raise ServeError(f"`ray start` failed (exit {proc.returncode}); last lines of {log_path}:\n"
                             + "\n".join(log_path.read_text(errors="replace").splitlines()[-30:]))
        self.state_file.touch(mode=0o600)
        self.state_file.write_text(json.dumps(asdict(state)))
        log.info("ray head started", extra={"address": state.address, "temp_dir": temp_dir})
        return state

    def stop(self) -> bool:
        """Stop our head's processes (SIGTERM, then SIGKILL); False when none ran."""
        state = self.state()
        if state is None:
            self.state_file.unlink(missing_ok=True)
            return False
        self._kill(state)
        self.state_file.unlink(missing_ok=True)
        shutil.rmtree(state.temp_dir, ignore_errors=True)
        log.info("ray head stopped", extra={"address": state.address})
        return True

    def _kill(self, state: HeadState) -> None:
        """SIGTERM the head's processes, SIGKILL what is left after STOP_TIMEOUT_S."""
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            for pid in self._owned_pids(state):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while self._owned_pids(state) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self._owned_pids(state):
                return

    @staticmethod
    def _owned_pids(state: HeadState) -> list[int]:
        """Processes of the head's session, if one of them is a Ray process under our temp dir
        (a reused session id is never ours)."""
        pids = session_pids(state.session_id)
        return pids if any(state.temp_dir in proc_cmdline(pid) for pid in pids) else []
