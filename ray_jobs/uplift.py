"""Uplift step: the contact history of past campaigns -> features on each campaign's date (Spark
on Ray) -> the uplift model on Ray Train, evaluated on the latest campaign, registered in MLflow.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.uplift``
"""
from __future__ import annotations

import datetime as dt

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
    from features import raw_etl
    from features.spark_session import raydp_spark
    from ml.uplift.history import HistoryError, read_contacts, usable_campaigns
    from ml.uplift.pipeline import train_and_register_uplift

    settings = get_settings()
    logs.configure(logs.new_run_id("uplift"))
    raw_uri = raw or f"{settings.data_uri}/generated/raw"
    days = settings.interventions.outcome_days
    with ray_session(settings):
        try:
            with raydp_spark(settings) as spark:
                last = raw_etl.data_window(raw_uri)[1]
                reference = raw_etl.run_many(spark, settings, raw_uri, [last - dt.timedelta(days=days)], days,
                                             latest=False)[0].snapshot
                contacts = read_contacts(reference)
                campaigns, notes = usable_campaigns(contacts, last, days)
                snapshots = [r.snapshot for r in raw_etl.run_many(spark, settings, raw_uri,
                                                                  [c.date for c in campaigns], days, latest=False)]
        except HistoryError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        for note in notes:
            console.print(f"[dim]{note}[/dim]")
        report = train_and_register_uplift(settings, snapshots, campaigns, contacts, notes, promote)
    for line in report.summary():
        console.print(line)


if __name__ == "__main__":
    typer.run(command)
