"""Batch scoring step: a feature snapshot + the registered model -> a scores folder for analysts
and marketing (Parquet, CSV, summary).

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.batch_score --snapshot latest``
"""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from core import logs
from core.ray_session import ray_session
from core.settings import get_settings
from ml.scoring.batch import CSV, BatchScores, score_snapshot

console = Console()


def command(
    snapshot: str = typer.Option("latest", help="Snapshot id, 'latest', or a snapshot URI."),
    model: str = typer.Option("champion", help="Registered model alias or version number."),
    force: bool = typer.Option(False, "--force", help="Recompute even if this run is already complete."),
) -> None:
    """Score every customer of a snapshot with a Ray Data actor pool; print the tier summary."""
    settings = get_settings()
    logs.configure(logs.new_run_id("score"))
    with ray_session(settings):
        result = score_snapshot(settings, snapshot, model, force=force)
    print_summary(result)


def print_summary(result: BatchScores) -> None:
    s = result.summary
    state = "scored" if result.output.built else "already scored, reused"
    table = Table(title=f"scores {s['run_id']} ({state})")
    for col in ("tier", "from p", "customers", "share", "expected churners", "mean p"):
        table.add_column(col, justify="left" if col == "tier" else "right")
    for t in s["tiers"]:
        mean = "-" if t["mean_probability"] is None else f"{t['mean_probability']:.3f}"
        table.add_row(t["tier"], f"{t['lower_bound']:.3f}", f"{t['customers']:,}", f"{t['share']:.1%}",
                      f"{t['expected_churners']:,.0f}", mean)
    table.add_row("total", "", f"{s['rows']:,}", "", f"{s['expected_churners']:,.0f}", "", style="bold")
    console.print(table)
    pool = s["pool"]
    console.print(f"{s['rows']:,} customers of snapshot {s['snapshot_id']} with model v{s['model_version']} in "
                  f"{s['seconds']:.1f} s ({s['rows_per_second']:,} rows/s; {pool['actors']} actors x "
                  f"{pool['cpus_per_actor']:g} CPU)")
    console.print(f"scores: {result.scores_uri}\ncsv:    {result.output.uri}/{CSV}")


if __name__ == "__main__":
    typer.run(command)
