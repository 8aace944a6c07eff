"""Materialize step: a snapshot's feature vectors into the online store (Redis), as a new live
version; ``--rollback`` makes the previous version live again.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.materialize --snapshot latest``
"""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from core import logs
from core.ray_session import ray_session
from core.settings import get_settings
from features.online.materialize import materialize, rollback
from features.online.redis_writer import RedisOnlineStore

console = Console()


def _print_versions(store: RedisOnlineStore) -> None:
    table = Table("version", "state", "rows", "schema", "source", "created")
    for v in store.versions():
        s = v.summary()
        table.add_row(s["version"], s["state"], f"{v.rows:,}", v.schema_hash, v.source, s["created_at"])
    console.print(table)


def command(
    snapshot: str = typer.Option("latest", help="Snapshot id, URI, or 'latest'."),
    do_rollback: bool = typer.Option(False, "--rollback", help="Make the previous version live again."),
    status: bool = typer.Option(False, "--status", help="Only list the online versions."),
) -> None:
    """Load a snapshot's features into the online store (Redis) and flip the live version."""
    logs.configure(logs.new_run_id("materialize"))
    settings = get_settings()
    store = RedisOnlineStore(settings)
    if do_rollback:
        live = rollback(settings)
        console.print(f"[green]rolled back:[/green] {live.id} is live again ({live.rows:,} rows from {live.source})")
    elif not status:
        with ray_session(settings):
            result = materialize(settings, snapshot)
        console.print(
            f"[green]{result.version.id} is live[/green]: {result.rows:,} customers x {len(result.version.features)} "
            f"features from {result.version.source} in {result.seconds:.1f} s ({result.rows_per_s:,.0f} rows/s); "
            f"previous: {result.previous or '-'}; removed {', '.join(result.removed) or 'nothing'} "
            f"in {result.cleanup_seconds:.1f} s"
        )
    _print_versions(store)


if __name__ == "__main__":
    typer.run(command)
