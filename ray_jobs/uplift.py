"""Uplift step: the contact history of past campaigns -> features on each campaign's date (Spark
on Ray) -> the uplift model on Ray Train, evaluated on the latest campaign, registered in MLflow.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.uplift``
"""
from __future__ import annotations

import typer
from rich.console import Console

from core import logs
from core.ray_session import ray_session
from core.settings import get_settings

console = Console()


def command(
    raw: str | None = typer.Option(None, help="Raw sources folder/URI (default: <data>/generated/raw)."),
    promote: bool = typer.Option(True, help="Make it champion when the held-out gate passes."),
) -> None:
    """Learn each customer's churn reduction per intervention from past campaigns and their control groups."""
    from features.raw_etl import EtlError
    from features.spark_session import raydp_spark
    from ml.uplift.history import HistoryError
    from ml.uplift.pipeline import train_and_register_uplift
    from ml.uplift.snapshots import build_history

    settings = get_settings()
    logs.configure(logs.new_run_id("uplift"))
    raw_uri = raw or f"{settings.data_uri}/generated/raw"
    with ray_session(settings):
        try:
            # Spark ends before Ray Train starts: its executors would hold the CPUs the workers need
            with raydp_spark(settings) as spark:
                history = build_history(spark, settings, raw_uri)
        except (HistoryError, EtlError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        for note in history.notes:
            console.print(f"[dim]{note}[/dim]")
        report = train_and_register_uplift(settings, history, promote)
    for line in report.summary():
        console.print(line)


if __name__ == "__main__":
    typer.run(command)
