"""Training step: distributed XGBoost on Ray Train, tracked in MLflow, registered as challenger.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.train --snapshot latest``
"""
from __future__ import annotations

import typer
from rich.console import Console

from core import logs
from core.ray_session import ray_session
from core.settings import get_settings

console = Console()


def command(
    snapshot: str = typer.Option("latest", help="Snapshot id, 'latest', or a snapshot URI."),
    workers: int = typer.Option(None, help="Ray Train workers (default: settings.train.num_workers)."),
) -> None:
    """Train XGBoost with Ray Train on a snapshot and register it as the challenger."""
    from features.snapshot import open_snapshot
    from ml.training.pipeline import train_and_register

    settings = get_settings()
    if workers:
        settings = settings.model_copy(update={"train": settings.train.model_copy(update={"num_workers": workers})})
    logs.configure(logs.new_run_id("train"))
    with ray_session(settings):
        report = train_and_register(settings, open_snapshot(settings, snapshot))
    for line in report.summary():
        console.print(line)


if __name__ == "__main__":
    typer.run(command)
