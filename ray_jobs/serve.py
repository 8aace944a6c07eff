"""``churn serve``: deploy the prediction service (``serve_app/config.yaml``) and wait until it is ready.

    churn serve            deploy (starting a local Ray head of the project's own if needed), wait
                           for GET /readyz, print the route
    churn serve status     readiness of the running service
    churn serve down       shut Serve down and stop the Ray head this command started

Without ``CHURN_RAY_ADDRESS`` the service runs on a Ray head started here, detached, with
throughput-optimised Serve (``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``: replicas answer HTTP on their
own ports) behind HAProxy (``RAY_SERVE_ENABLE_HA_PROXY=1``: one stable route on
``CHURN_SERVE__PORT``). Those flags are read when Ray starts, hence a head of its own; its settings
are this process's (passed as ``CHURN_*`` variables), its ports are free ones (several clusters can
share a machine) and ``down`` signals only the processes of that head's session, verified first.
With ``CHURN_RAY_ADDRESS`` the app is deployed onto that cluster as it is configured.
"""
from __future__ import annotations

import json
import secrets
import shutil
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, Optional

import httpx
import typer
import yaml
from rich.console import Console
from rich.markup import escape

from ray_jobs import logs
from ray_jobs.runtime import START_ATTEMPTS
from ray_jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)

CONFIG = Path(__file__).resolve().parents[1] / "serve_app" / "config.yaml"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
# How Serve must run, wherever Ray starts (our local head here; the RayService's pods on Kubernetes,
# kept equal by tests/test_kuberay.py). Throughput-optimised Serve with HAProxy as the stable
# route (Ray >= 2.55). Ray starts its workers at nice 15 by default, below its own daemons and
# everything else on the machine: for a service whose replicas ARE the workload that made every
# burst of the raylet, the dashboard agent or the load generator a latency spike. HAProxy's
# per-request metrics are parsed in Python by its manager actor (CPU taken from the replicas);
# each replica records every request in Serve's own latency histogram (serve_app/metrics.py).
# Every Ray process exports its metrics to the node's agent once a second instead of every 10 s:
# the agent replays each histogram observation one by one (~10 us each), so at 2,000 requests/s
# a 10 s export was ~100,000 of them at once, a core taken from the replicas for half a second.
CLUSTER_FLAGS = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_worker_niceness": "0",
    "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
    "RAY_metrics_report_interval_ms": "1000",
}
# This machine's additions. The proxy's ready check gets more time than the default 5 s: on a
# busy 2-core machine HAProxy's manager actor can take longer to start, and the controller would
# kill it. HAProxy's default of 4 threads oversubscribes a small machine that also runs the replicas.
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


def free_port() -> int:
    """A currently free loopback port (never 6379, a user's own Redis)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 6379:
            return port


def settings_env(settings: Settings) -> dict[str, str]:
    """``CHURN_*`` variables that rebuild ``settings`` in another process (Ray workers)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json", exclude_none=True).items():
        if name == "redis_url":
            env["REDIS_URL"] = value
        elif name == "mlflow_tracking_uri":
            env["MLFLOW_TRACKING_URI"] = value
        elif isinstance(value, dict):
            for key, inner in value.items():
                if inner is not None:
                    env[f"CHURN_{name.upper()}__{key.upper()}"] = inner if isinstance(inner, str) else json.dumps(inner)
        else:
            env[f"CHURN_{name.upper()}"] = str(value)
    env["CHURN_STATE_DIR"] = str(Path(settings.state_dir).absolute())
    return env


def serve_config(settings: Settings, path: Path = CONFIG) -> dict[str, Any]:
    """The Serve config file with the HTTP host and port from settings."""
    config = yaml.safe_load(path.read_text())
    config["http_options"] = {**(config.get("http_options") or {}), "host": settings.serve.host,
                              "port": settings.serve.port}
    return config


def route(settings: Settings) -> str:
    host = "127.0.0.1" if settings.serve.host in ("0.0.0.0", "::") else settings.serve.host
    return f"http://{host}:{settings.serve.port}"


# ------------------------------------------------------------------------------- the Ray head
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


def _proc_session(pid: int) -> Optional[int]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[3]) if fields[0] not in ("Z", "X") else None


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _session_pids(session_id: int) -> list[int]:
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if pid != os.getpid() and _proc_session(pid) == session_id]


class RayHead:
    """A detached local Ray head started by ``churn serve`` in a session of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = (Path(settings.state_dir) / "serve").absolute()
        self.state_file = self.dir / "head.json"

    def state(self) -> Optional[HeadState]:
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
        env = {**os.environ, **settings_env(self.settings), **SERVE_FLAGS, "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": token, **{name: str(free_port()) for name in _PORT_ENV}}
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
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self._owned_pids(state) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self._owned_pids(state):
                return

    @staticmethod
    def _owned_pids(state: HeadState) -> list[int]:
        """Processes of the head's session, if one of them is a Ray process under our temp dir
        (a reused session id is never ours)."""
        pids = _session_pids(state.session_id)
        return pids if any(state.temp_dir in _proc_cmdline(pid) for pid in pids) else []


# ------------------------------------------------------------------------------- deploy
# `serve shutdown` talks to the dashboard, which our head does not run: shut down through Ray.
_SHUTDOWN = "import ray; from ray import serve; ray.init(namespace='serve', logging_level='ERROR'); serve.shutdown()"


def _ray_client(settings: Settings, client_env: dict[str, str], cmd: list[str]) -> None:
    """Run a Ray client command in a process of its own with ``client_env`` (address, auth)."""
    env = {**os.environ, **settings_env(settings), **SERVE_FLAGS, **client_env}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ServeError(f"`{' '.join(cmd[:3])}` failed (exit {proc.returncode}):\n"
                         f"{(proc.stdout + proc.stderr)[-3000:]}")


def deploy(settings: Settings, config: Optional[dict[str, Any]] = None) -> str:
    """Deploy ``config`` (default: serve_app/config.yaml with host/port from settings) with
    ``serve run --non-blocking`` onto the configured cluster or our own head; returns its address."""
    client_env = _client_env(settings)
    config_path = Path(settings.state_dir).absolute() / "serve" / "config.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config or serve_config(settings), sort_keys=False))
    serve_cli = str(Path(sys.executable).with_name("serve"))
    _ray_client(settings, client_env, [serve_cli, "run", "--non-blocking", str(config_path)])
    return client_env["RAY_ADDRESS"]


def _client_env(settings: Settings, start: bool = True) -> Optional[dict[str, str]]:
    """How to reach the service's cluster: the configured one, else our head (started if asked)."""
    if settings.ray_address:
        return {"RAY_ADDRESS": settings.ray_address}
    head = RayHead(settings)
    state = head.start() if start else head.state()
    return state.client_env if state else None


def readiness(settings: Settings, timeout_s: float = 5.0) -> tuple[int, dict[str, Any]]:
    """(status, body) of GET /readyz; (0, {"error": ...}) when nothing answers."""
    try:
        response = httpx.get(f"{route(settings)}/readyz", timeout=timeout_s)
        return response.status_code, response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return 0, {"error": str(exc)}


def wait_ready(settings: Settings, timeout_s: Optional[float] = None) -> dict[str, Any]:
    """Poll /readyz until it answers 200; raise ServeError with the last answer on timeout."""
    deadline = time.monotonic() + (timeout_s or settings.serve.ready_timeout_s)
    while True:
        status, body = readiness(settings)
        if status == 200:
            return body
        if time.monotonic() > deadline:
            raise ServeError(f"{route(settings)}/readyz not ready: HTTP {status or '-'} {json.dumps(body)}")
        time.sleep(1.0)


def shutdown(settings: Settings) -> bool:
    """Shut Serve down and stop our head (if we started one); True when something was stopped."""
    client_env = _client_env(settings, start=False)
    if client_env is None:
        return False
    try:
        _ray_client(settings, client_env, [sys.executable, "-c", _SHUTDOWN])
    except ServeError as exc:
        log.warning("serve shutdown failed; stopping the head anyway", extra={"error": str(exc)})
    return RayHead(settings).stop() if not settings.ray_address else True


# ------------------------------------------------------------------------------- CLI
app = typer.Typer(add_completion=False, help="Deploy, check and stop the prediction service (Ray Serve).")
console = Console(soft_wrap=True)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(1)


def _print_checks(body: dict[str, Any]) -> None:
    if "error" in body:
        console.print(f"  [red]unreachable[/red]  {escape(body['error'])}")
    for name, check in (body.get("checks") or {}).items():
        colour = "green" if check.get("ok") else "red"
        details = "  ".join(f"{k}={v}" for k, v in check.items() if k != "ok")
        console.print(f"  [{colour}]{name}[/{colour}]  {escape(details)}")


@app.callback(invoke_without_command=True)
def up(ctx: typer.Context) -> None:
    """Deploy serve_app/config.yaml, wait for /readyz and print the route."""
    if ctx.invoked_subcommand is not None:
        return
    logs.configure(logs.new_run_id("serve"))
    settings = get_settings()
    try:
        address = deploy(settings)
        body = wait_ready(settings)
    except ServeError as exc:
        _fail(str(exc))
    console.print(f"[green]churn prediction service ready[/green] at {route(settings)}  (Ray {address})")
    _print_checks(body)
    key = " -H 'X-API-Key: $CHURN_SERVE__API_KEY'" if settings.serve.api_key else ""
    console.print(f"  try: curl -s{key} {route(settings)}/v1/predict -H 'content-type: application/json' "
                  "-d '{\"customer_id\": \"<id>\"}'   docs: " + f"{route(settings)}/docs")


@app.command()
def status() -> None:
    """Readiness of the running service; exit code 1 when it is not ready."""
    settings = get_settings()
    code, body = readiness(settings)
    state = RayHead(settings).state()
    where = f"Ray {state.address}, metrics :{state.metrics_port}" if state else "Ray: " + (settings.ray_address or "-")
    colour, verdict = ("green", "ready") if code == 200 else ("red", f"not ready (HTTP {code or '-'})")
    console.print(f"[{colour}]{route(settings)} {verdict}[/{colour}]  {escape(where)}")
    _print_checks(body)
    raise typer.Exit(0 if code == 200 else 1)


def _json_or_text(value: str) -> Any:
    """``3`` -> 3, ``0.5`` -> 0.5, ``true`` -> True; anything else stays text (a category)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


@app.command()
def predict(
    customer_id: str = typer.Argument(..., help="Customer to score."),
    override: list[str] = typer.Option([], help="Replace a stored feature for this call: feature=value."),
) -> None:
    """Call POST /v1/predict on the running service and print its answer."""
    settings = get_settings()
    overrides = {}
    for item in override:
        name, sep, value = item.partition("=")
        if not sep:
            _fail(f"--override {item!r}: expected feature=value")
        overrides[name] = _json_or_text(value)
    headers = {"X-API-Key": settings.serve.api_key} if settings.serve.api_key else {}
    try:
        response = httpx.post(f"{route(settings)}/v1/predict", headers=headers, timeout=10.0,
                              json={"customer_id": customer_id, "overrides": overrides})
    except httpx.HTTPError as exc:
        _fail(f"{route(settings)} unreachable: {exc} (is `churn serve` running?)")
    console.print_json(response.text)
    raise typer.Exit(0 if response.is_success else 1)


@app.command()
def down() -> None:
    """Shut Serve down and stop the Ray head `churn serve` started (never another cluster)."""
    logs.configure(logs.new_run_id("serve"))
    stopped = shutdown(get_settings())
    console.print("[green]prediction service stopped[/green]" if stopped else "nothing to stop")
