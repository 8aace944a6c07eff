"""One training run: snapshot -> stable splits -> Ray Train -> holdout evaluation ->
MLflow (params, metrics every N rounds, model, report) -> registered as ``challenger``."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mlflow
import numpy as np
import ray
from ray.data.expressions import col

from core.provenance import code_version
from core.schema import LABEL
from core.settings import Settings
from features.snapshot import Snapshot
from ml import registry
from ml.data import HOLDOUT, SPLIT, Labelled, dataset_pos_weight, with_split
from ml.evaluation import evaluate as ev
from ml.evaluation import explain
from ml.training.cross_validation import cross_validated_auc
from ml.training.ray_train import fit
from ml.value import customer_value

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    run_id: str
    version: str
    metrics: dict[str, float]
    cv_auc: list[float]
    report_path: Path
    rounds: int
    seconds: float

    def summary(self) -> list[str]:
        """What a person reads after a run: the version, its holdout scores, where the report is."""
        m = self.metrics
        cv = (f", {len(self.cv_auc)}-fold CV AUC {m['cv_auc_mean']:.4f} ± {m['cv_auc_std']:.4f}"
              if self.cv_auc else "")
        return [
            f"model version {self.version} (challenger): holdout ROC-AUC {m['holdout_roc_auc']:.4f}, "
            f"PR-AUC {m['holdout_pr_auc']:.4f}{cv}; {self.rounds} trees; {self.seconds:.1f} s",
            f"top-decile campaign value on the holdout: {m['holdout_realised_value_top_k']:,.0f} "
            f"vs {m['holdout_realised_value_random_k']:,.0f} at random",
            f"evaluation report: {self.report_path}  (MLflow run {self.run_id})",
        ]


def split_datasets(snapshot: Snapshot, settings: Settings):
    """The training and validation rows as one materialised Ray Dataset with a ``SPLIT`` column
    (read before training starts, so the training workers never wait on read tasks for CPUs),
    and the holdout as a frame.

    One dataset, not two: each worker gets one shard of it and separates the two splits itself.
    One read, in a few large blocks (Ray Data's default of 200 blocks made every later step pay
    per block), tags whole Arrow blocks with their split."""
    if not snapshot.has_label:
        raise ValueError(f"snapshot {snapshot.id} has no label (a scoring snapshot): train on a training snapshot")
    blocks = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    tagged = snapshot.read(override_num_blocks=blocks).map_batches(
        cast("Callable[[Any], Any]", with_split), fn_kwargs={"train": settings.train}, batch_size=None,
        batch_format="pyarrow").materialize()
    rows = tagged.filter(expr=col(SPLIT) != HOLDOUT).select_columns([*snapshot.feature_set.names, LABEL, SPLIT])
    holdout = tagged.filter(expr=col(SPLIT) == HOLDOUT).drop_columns([SPLIT]).to_pandas()
    return rows.materialize(), holdout


def _log_history(history: list[dict[str, float]], every: int) -> None:
    for i, row in enumerate(history, start=1):
        step = int(row.get("training_iteration", i * every))
        mlflow.log_metrics({k.replace("-", "_"): v for k, v in row.items() if "-" in k}, step=step)


def train_and_register(settings: Settings, snapshot: Snapshot, params: dict[str, Any] | None = None,
                       run_name: str = "train", nested: bool = False) -> TrainReport:
    """Train on ``snapshot`` with ``params`` (settings' defaults otherwise), evaluate on the
    holdout, log everything to MLflow and register the model as ``challenger``."""
    started = time.perf_counter()
    t = settings.train
    params = {**t.params, **(params or {})}
    features = snapshot.feature_set
    client = registry.setup(settings)
    rows, holdout_frame = split_datasets(snapshot, settings)
    pos_weight = dataset_pos_weight(rows)
    with mlflow.start_run(run_name=run_name, nested=nested) as run:
        mlflow.log_params({**params, "num_workers": t.num_workers, "num_boost_round": t.num_boost_round,
                           "early_stopping_rounds": t.early_stopping_rounds, "seed": t.seed,
                           "scale_pos_weight": round(pos_weight, 4)})
        context = {"snapshot_id": snapshot.id, "schema_hash": features.schema_hash,
                   "code_version": code_version(), "seed": str(t.seed), "features": str(len(features))}
        mlflow.set_tags(context)
        outcome = fit(rows, features, params, t, settings.results_uri,
                      f"{run_name}-{run.info.run_id[:8]}", pos_weight)
        _log_history(outcome.history, t.report_every)
        holdout = Labelled.from_frame(holdout_frame, features)
        proba = outcome.booster.inplace_predict(holdout.X)
        evaluation = _evaluate(outcome.booster, holdout, proba, features.names, settings)
        cv = _cross_validate(snapshot, settings, params, outcome.rounds) if t.cv_folds > 1 else []
        metrics = {f"holdout_{k}": v for k, v in evaluation.metrics.items()}
        metrics |= {"holdout_expected_value_top_k": evaluation.value["model"],
                    "holdout_realised_value_top_k": evaluation.realised_value["model"],
                    "holdout_realised_value_random_k": evaluation.realised_value["random"],
                    "rounds": outcome.rounds,
                    # > 0: workers were lost and the run went on from its last checkpoint
                    "resumed_from_round": outcome.metrics.get("resumed_from_round", 0)}
        if cv:
            metrics |= {"cv_auc_mean": float(np.mean(cv)), "cv_auc_std": float(np.std(cv))}
        mlflow.log_metrics(metrics)
        out = settings.state_dir / "reports" / "train" / run.info.run_id
        evaluation.plots = ev.plot(evaluation, holdout.y, proba, out)
        evaluation.report = ev.write_report(evaluation, out, f"Churn model evaluation: run {run.info.run_id[:8]}",
                                            {**context, "rounds": str(outcome.rounds),
                                             "cv_auc": f"{np.mean(cv):.4f} ± {np.std(cv):.4f}" if cv else "n/a"})
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        model_uri = registry.log_model(outcome.booster, features, holdout_frame)
    version = registry.register(client, settings, model_uri, {
        **context, "holdout_auc": f"{evaluation.metrics['roc_auc']:.5f}",
        "cv_auc": f"{np.mean(cv):.5f}" if cv else "", "threshold": f"{evaluation.threshold:.5f}"})
    log.info("model registered", extra={"version": version.version, "holdout_auc": evaluation.metrics["roc_auc"]})
    return TrainReport(run.info.run_id, str(version.version), metrics, cv, evaluation.report,
                       outcome.rounds, time.perf_counter() - started)


def _evaluate(booster, holdout: Labelled, proba: np.ndarray, names: list[str], settings: Settings) -> ev.Evaluation:
    contribs = explain.contributions(booster, holdout.X, names)
    importance = booster.get_score(importance_type="total_gain")
    value = customer_value(holdout.frame, settings.campaign)
    return ev.evaluate(holdout.y, proba, contribs, names, importance,
                       value, settings.campaign)


def _cross_validate(snapshot: Snapshot, settings: Settings, params: dict[str, Any], rounds: int) -> list[float]:
    """K-fold ROC-AUC on the whole labelled snapshot with the trained configuration."""
    data = Labelled.from_frame(snapshot.to_pandas(), snapshot.feature_set)
    return cross_validated_auc(data.X, data.y, data.customer_ids, params, rounds, settings.train.cv_folds,
                               settings.train.seed)

