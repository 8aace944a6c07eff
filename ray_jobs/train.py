"""Training step: distributed XGBoost on Ray Train, tracked in MLflow, registered as challenger.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.train --snapshot latest``
"""
from __future__ import annotations

import typer
from rich.console import Console

from ray_jobs import logs
from ray_jobs.runtime import ray_session
from ray_jobs.settings import get_settings

console = Console()


def print_report(report) -> None:
    m = report.metrics
    cv = f", {len(report.cv_auc)}-fold CV AUC {m['cv_auc_mean']:.4f} ± {m['cv_auc_std']:.4f}" if report.cv_auc else ""
    console.print(f"model version {report.version} (challenger): holdout ROC-AUC {m['holdout_roc_auc']:.4f}, "
                  f"PR-AUC {m['holdout_pr_auc']:.4f}{cv}; {report.rounds} trees; {report.seconds:.1f} s")
    console.print(f"top-decile campaign value on the holdout: {m['holdout_realised_value_top_k']:,.0f} "
                  f"vs {m['holdout_realised_value_random_k']:,.0f} at random")
    console.print(f"evaluation report: {report.report_path}  (MLflow run {report.run_id})")


def command(
    snapshot: str = typer.Option("latest", help="Snapshot id, 'latest', or a snapshot URI."),
    workers: int = typer.Option(None, help="Ray Train workers (default: settings.train.num_workers)."),
) -> None:
    """Train XGBoost with Ray Train on a snapshot and register it as the challenger."""
    from features.snapshot import open_snapshot
    from ray_jobs.ml.training import train_and_register

    settings = get_settings()
    if workers:
        settings = settings.model_copy(update={"train": settings.train.model_copy(update={"num_workers": workers})})
    logs.configure(logs.new_run_id("train"))
    with ray_session(settings):
        report = train_and_register(settings, open_snapshot(settings, snapshot))
    print_report(report)


if __name__ == "__main__":
    typer.run(command)
