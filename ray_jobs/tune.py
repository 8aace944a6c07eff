"""Tuning step: Ray Tune search (Optuna + ASHA), every trial a nested MLflow run, then the
best configuration trained with Ray Train and registered as the challenger.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.tune --trials 20``
"""
from __future__ import annotations

import time

import mlflow
import typer
from rich.console import Console

from ray_jobs import logs
from ray_jobs.runtime import ray_session
from ray_jobs.settings import get_settings

console = Console()


def command(
    trials: int = typer.Option(None, help="Trials to run (default: settings.tune.trials)."),
    snapshot: str = typer.Option("latest", help="Snapshot id, 'latest', or a snapshot URI."),
) -> None:
    """Search XGBoost parameters with Ray Tune, then train and register the best as challenger."""
    from features.snapshot import open_snapshot
    from ray_jobs.ml import registry
    from ray_jobs.ml.training import split_datasets, train_and_register
    from ray_jobs.train import print_report
    from tuning.search import search
    from tuning.tracking import best_config, log_trials

    settings = get_settings()
    trials = trials or settings.tune.trials
    logs.configure(logs.new_run_id("tune"))
    with ray_session(settings):
        snap = open_snapshot(settings, snapshot)
        registry.setup(settings)
        with mlflow.start_run(run_name="tune") as parent:
            tags = {"snapshot_id": snap.id, "schema_hash": snap.feature_set.schema_hash}
            mlflow.set_tags(tags)
            started = time.perf_counter()
            rows, _ = split_datasets(snap, settings)
            results = search(settings, rows, snap.feature_set, trials)
            seconds = time.perf_counter() - started
            log_trials(results, tags)
            params, score = best_config(results)
            mlflow.log_params({f"best_{k}": v for k, v in params.items()})
            mlflow.log_metrics({"best_validation_auc": score, "trials": len(results),
                                "trials_per_hour": len(results) / seconds * 3600})
            report = train_and_register(settings, snap, params, run_name="tune-best", nested=True)
    console.print(f"{len(results)} trials in {seconds:.0f} s ({len(results) / seconds * 3600:.0f}/h); "
                  f"best validation AUC {score:.4f} with {params}  (MLflow run {parent.info.run_id})")
    print_report(report)


if __name__ == "__main__":
    typer.run(command)
