"""``churn services``: start, check and stop the project's own Redis (the embedded online feature
store: one redis-server, or with ``--ha`` a primary, replicas and Sentinels) and, with ``--s3``, its
own S3 server (SeaweedFS) for ``s3://`` data roots. The commands read ``get_settings()`` (cached
per process, like every step)."""
from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from core.settings import get_settings
from ray_jobs.supervisors.redis_process import ServiceError
from ray_jobs.supervisors.redis_server import RedisServer, Status
from ray_jobs.supervisors.s3_server import S3Server, S3Status

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Manage the embedded Redis (online feature store) and S3 server.")
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


def _print_s3(status: S3Status) -> None:
    colour = "green" if status.healthy else "red"
    details = f"endpoint={status.endpoint}" + (f"  pid={status.pid}" if status.pid else "")
    console.print(f"[{colour}]{escape(status.message)}[/{colour}]  {escape(details)}")
    if status.healthy and status.bucket:
        console.print(escape(f"  data on S3: export CHURN_DATA_ROOT=s3://{status.bucket}/data "
                             "(every step finds the endpoint and keys by itself)"))


def _fail(exc: ServiceError) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1)


@app.command()
def up(
    ha: bool = typer.Option(False, "--ha", help="Add replicas and Sentinels: the primary fails over automatically."),
    s3: bool = typer.Option(False, "--s3", help="Also start the S3 server (SeaweedFS) for s3:// data roots."),
) -> None:
    """Start the project's Redis (or check that REDIS_URL answers); the password is generated on first start."""
    try:
        _print_status(_server().up(ha=ha))
        if s3:
            _print_s3(S3Server(get_settings()).up())
    except ServiceError as exc:
        _fail(exc)


@app.command()
def down() -> None:
    """Stop the project's redis-server and S3 server (never one this project did not start)."""
    server = _server()
    try:
        stopped = server.down()
    except ServiceError as exc:
        _fail(exc)
    if S3Server(server.settings).down():
        console.print("[green]S3 server stopped[/green] (its data stays under the state folder)")
    if not server.settings.owns_redis:
        console.print(escape(f"REDIS_URL is set: external Redis {server.url} is not managed here; nothing to stop"))
    elif stopped:
        console.print(f"[green]Redis on port {server.cfg.port} stopped[/green]")
    else:
        console.print(f"redis-server on port {server.cfg.port} is not running; nothing to stop")


@app.command()
def status() -> None:
    """Report whether the Redis in use (and the S3 store, where used) is healthy; exit code 1 when not."""
    st = _server().status()
    _print_status(st)
    healthy = st.healthy
    s3 = S3Server(get_settings())
    if s3.running_pid() is not None or s3.settings.data_uri.startswith("s3://"):  # the S3 store matters
        s3_status = s3.status()
        _print_s3(s3_status)
        healthy = healthy and s3_status.healthy
    raise typer.Exit(0 if healthy else 1)
