"""``churn services``: start, check and stop the project's own Redis (the embedded online feature
store: one redis-server, or with ``--ha`` a primary, replicas and Sentinels). The commands read
``get_settings()`` (cached per process, like every step)."""
from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from core.settings import get_settings
from ray_jobs.supervisors.redis_process import ServiceError
from ray_jobs.supervisors.redis_server import RedisServer, Status

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Manage the embedded Redis (online feature store).")
console = Console(soft_wrap=True)


def _server() -> RedisServer:
    return RedisServer(get_settings())


def _print_status(status: Status) -> None:
    colour = "green" if status.healthy else "red"
    details = [f"url={status.url}"]
    if status.pid is not None:
        details.append(f"pid={status.pid}")
    if status.healthy:
        details += [f"aof={'on' if status.aof else 'off'}", f"memory={status.used_memory}", f"keys={status.keys}"]
    console.print(f"[{colour}]{escape(status.message)}[/{colour}]  " + escape("  ".join(details)))
    for member in status.members:
        console.print(f"  {escape(member)}")


def _fail(exc: ServiceError) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1)


@app.command()
def up(
    ha: bool = typer.Option(False, "--ha", help="Add replicas and Sentinels: the primary fails over automatically."),
) -> None:
    """Start the project's Redis (or check that REDIS_URL answers); the password is generated on first start."""
    try:
        _print_status(_server().up(ha=ha))
    except ServiceError as exc:
        _fail(exc)


@app.command()
def down() -> None:
    """Stop the project's redis-server (never a Redis this project did not start)."""
    server = _server()
    try:
        stopped = server.down()
    except ServiceError as exc:
        _fail(exc)
    if not server.settings.owns_redis:
        console.print(escape(f"REDIS_URL is set: external Redis {server.url} is not managed here; nothing to stop"))
    elif stopped:
        console.print(f"[green]Redis on port {server.cfg.port} stopped[/green]")
    else:
        console.print(f"redis-server on port {server.cfg.port} is not running; nothing to stop")


@app.command()
def status() -> None:
    """Report whether the Redis in use is healthy; exit code 1 when it is not."""
    st = _server().status()
    _print_status(st)
    raise typer.Exit(0 if st.healthy else 1)
