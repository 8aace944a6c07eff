"""Tuning step: Ray Tune search (Optuna + ASHA), every trial a nested MLflow run, then the
best configuration trained with Ray Train and registered as the challenger.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.tune --trials 20``
"""
from __future__ import annotations

import typer
from rich.console import Console

from core import logs
from core.ray_session import ray_session
from core.settings import get_settings

console = Console()


def command(
    trials: int = typer.Option(None, help="Trials to run (default: settings.tune.trials)."),
    snapshot: str = typer.Option("latest", help="Snapshot id, 'latest', or a snapshot URI."),
) -> None:
    """Search XGBoost parameters with Ray Tune, then train and register the best as challenger."""
    from tuning.pipeline import tune_and_register

    settings = get_settings()
    logs.configure(logs.new_run_id("tune"))
    with ray_session(settings):
        report = tune_and_register(settings, snapshot, trials or settings.tune.trials)
    console.print(f"{report.trials} trials in {report.seconds:.0f} s ({report.trials_per_hour:.0f}/h); "
                  f"best validation AUC {report.best_score:.4f} with {report.best_params}  "
                  f"(MLflow run {report.run_id})")
    for line in report.model.summary():
        console.print(line)


if __name__ == "__main__":
    typer.run(command)
