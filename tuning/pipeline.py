"""One tuning run end to end: the search as an MLflow parent run (every trial a nested run), then
the best configuration trained with Ray Train and registered as the challenger."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import mlflow

from core.settings import Settings
from features.snapshot import open_snapshot
from ml import registry
from ml.training.pipeline import TrainReport, split_datasets, train_and_register
from tuning.search import search
from tuning.tracking import best_config, log_trials


@dataclass(frozen=True)
class TuneReport:
    run_id: str
    """The MLflow parent run of the search."""
    trials: int
    seconds: float
    best_params: dict[str, Any]
    best_score: float
    """Best validation ROC-AUC of any trial at any report."""
    model: TrainReport
    """The best configuration, trained on all training rows and registered."""

    @property
    def trials_per_hour(self) -> float:
        return self.trials / self.seconds * 3600 if self.seconds else 0.0


def tune_and_register(settings: Settings, snapshot_ref: str, trials: int) -> TuneReport:
    """Search ``trials`` configurations on a snapshot, then train and register the best (needs a
    connected Ray cluster)."""
    snap = open_snapshot(settings, snapshot_ref)
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
        model = train_and_register(settings, snap, params, run_name="tune-best", nested=True)
    return TuneReport(parent.info.run_id, len(results), seconds, params, score, model)
