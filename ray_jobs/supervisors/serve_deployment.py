"""Deploying the prediction service (``serve_app/config.yaml``) onto the configured cluster or
the project's own Ray head, checking its readiness, and shutting it down."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from core.settings import Settings, settings_env
from ray_jobs.supervisors.ray_head import SERVE_FLAGS, START_TIMEOUT_S, RayHead, ServeError

log = logging.getLogger(__name__)

CONFIG = Path(__file__).resolve().parents[2] / "serve_app" / "config.yaml"


def serve_config(settings: Settings, path: Path = CONFIG) -> dict[str, Any]:
    """The Serve config file with the HTTP host and port from settings."""
    config = yaml.safe_load(path.read_text())
    config["http_options"] = {**(config.get("http_options") or {}), "host": settings.serve.host,
                              "port": settings.serve.port}
    return config


def route(settings: Settings) -> str:
    host = "127.0.0.1" if settings.serve.host in ("0.0.0.0", "::") else settings.serve.host
    return f"http://{host}:{settings.serve.port}"


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


def deploy(settings: Settings, config: dict[str, Any] | None = None) -> str:
    """Deploy ``config`` (default: serve_app/config.yaml with host/port from settings) with
    ``serve run --non-blocking`` onto the configured cluster or our own head; returns its address."""
    client_env = _client_env(settings)
    assert client_env is not None
    config_path = Path(settings.state_dir).absolute() / "serve" / "config.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config or serve_config(settings), sort_keys=False))
    serve_cli = str(Path(sys.executable).with_name("serve"))
    _ray_client(settings, client_env, [serve_cli, "run", "--non-blocking", str(config_path)])
    return client_env["RAY_ADDRESS"]


def _client_env(settings: Settings, start: bool = True) -> dict[str, str] | None:
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


def wait_ready(settings: Settings, timeout_s: float | None = None) -> dict[str, Any]:
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
