"""``churn serve``: deploy the prediction service (``serve_app/config.yaml``) and wait until it is ready.

    churn serve            deploy (starting a local Ray head of the project's own if needed), wait
                           for GET /readyz, print the route
    churn serve status     readiness of the running service
    churn serve down       shut Serve down and stop the Ray head this command started

Without ``CHURN_RAY_ADDRESS`` the service runs on a Ray head of its own
(``ray_jobs.supervisors.ray_head``); with it, the app is deployed onto that cluster as it is
configured.
"""
from __future__ import annotations

import json
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from core import logs
from core.settings import get_settings
from ray_jobs.supervisors.ray_head import RayHead, ServeError
from ray_jobs.supervisors.serve_deployment import deploy, readiness, route, shutdown, wait_ready

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
