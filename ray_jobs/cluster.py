"""``churn cluster``: start, check and stop a multi-node Ray cluster on this machine (a head and
worker nodes, each a network namespace of its own), to which every step is submitted as a Ray job."""
from __future__ import annotations

import shlex
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from core.settings import get_settings
from ray_jobs.supervisors.netns_hosts import HostsError
from ray_jobs.supervisors.ray_cluster import ClusterError, LocalCluster
from ray_jobs.supervisors.redis_process import ServiceError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Manage a local multi-node Ray cluster.")
console = Console(soft_wrap=True)


def _fail(exc: Exception) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start the head and the worker nodes; print what to export for `ray job submit`."""
    cluster = LocalCluster(get_settings())
    try:
        state = cluster.up()
    except (ClusterError, HostsError, ServiceError) as exc:
        _fail(exc)
    console.print(f"[green]cluster up[/green]: head {state.ips[0]}, workers {', '.join(state.ips[1:])}; "
                  f"Jobs API {state.dashboard}")
    console.print("submit jobs after:")
    for name, value in state.client_env.items():
        console.print(f"  export {name}={shlex.quote(value)}", highlight=False)


@app.command()
def status() -> None:
    """The nodes the head knows alive; exit code 1 when no cluster runs."""
    cluster = LocalCluster(get_settings())
    state = cluster.state()
    if state is None:
        console.print("no cluster running")
        raise typer.Exit(1)
    try:
        nodes = cluster.alive_nodes(state)
    except Exception as exc:  # the head does not answer: said, not raised
        _fail(ClusterError(f"the head at {state.dashboard} does not answer: {exc}"))
    for node in sorted(nodes, key=lambda n: n["node_ip"]):
        role = "head" if node.get("is_head_node") else "worker"
        cpus = node.get("resources_total", {}).get("CPU", 0)
        console.print(f"{node['node_ip']}  {role}  cpus={cpus:g}  {node['node_id'][:12]}", highlight=False)


@app.command()
def down() -> None:
    """Stop every node and remove the hosts."""
    try:
        stopped = LocalCluster(get_settings()).down()
    except HostsError as exc:
        _fail(exc)
    console.print("[green]cluster stopped[/green]" if stopped else "no cluster running; nothing to stop")
