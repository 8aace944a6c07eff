"""Distributed XGBoost on Ray Train.

Each worker reads its Ray Data shard, builds a DMatrix and joins XGBoost's collective
(set up by ``XGBoostTrainer``). Metrics and a checkpoint are reported every ``report_every``
rounds, not every round: each report costs a round trip and a checkpoint upload. After a
worker dies, Ray Train restarts the group and every worker resumes from the last checkpoint.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.train
import xgboost as xgb
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

from features.feature_set import FeatureSet
from features.spark_features import LABEL
from ray_jobs.ml.data import feature_matrix
from ray_jobs.settings import TrainSettings

log = logging.getLogger(__name__)


def booster_params(params: dict[str, Any], threads: int, pos_weight: float, seed: int) -> dict[str, Any]:
    return {**params, "objective": "binary:logistic", "eval_metric": ["logloss", "auc"],
            "nthread": threads, "scale_pos_weight": pos_weight, "seed": seed}


def shard_matrix(name: str, feature_names: list[str], max_bin: int | None = None,
                 ref: xgb.QuantileDMatrix | None = None) -> xgb.QuantileDMatrix:
    """This worker's shard of dataset ``name`` as a QuantileDMatrix (histogram bins straight from
    the Arrow blocks' float32 copy, no intermediate pandas frame); ``max_bin`` must be the
    booster's; ``ref``: the training matrix whose bins a validation matrix must share."""
    blocks = list(ray.train.get_dataset_shard(name).iter_batches(batch_size=None, batch_format="pyarrow"))
    if not blocks:
        raise ValueError(f"this training worker received no rows of {name!r}: use fewer workers for so few rows")
    table = pa.concat_tables(blocks)
    return xgb.QuantileDMatrix(feature_matrix(table, feature_names), label=table.column(LABEL).to_numpy(),
                               feature_names=feature_names, max_bin=max_bin, ref=ref)


class ReportEveryN(RayTrainReportCallback):
    """Ray's callback reports metrics after every round; this one reports (with a checkpoint)
    only every ``frequency`` rounds and at the end."""

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        self._evals_log = evals_log
        if (epoch + 1) % self._frequency == 0:
            self._last_checkpoint_iteration = epoch
            self._save_and_report_checkpoint(self._get_report_dict(evals_log), model)
        return False


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    names = config["feature_names"]
    max_bin = config["params"].get("max_bin")
    dtrain = shard_matrix("train", names, max_bin)
    dvalid = shard_matrix("validation", names, max_bin, ref=dtrain)
    checkpoint = ray.train.get_checkpoint()
    start_model = RayTrainReportCallback.get_model(checkpoint) if checkpoint else None
    done = start_model.num_boosted_rounds() if start_model else 0
    if done:
        log.info("resuming from checkpoint", extra={"rounds_done": done})
    xgb.train(
        config["params"], dtrain,
        num_boost_round=max(config["num_boost_round"] - done, 0),
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=config["early_stopping_rounds"],
        xgb_model=start_model,
        verbose_eval=False,
        callbacks=[ReportEveryN(frequency=config["report_every"], checkpoint_at_end=True,
                                results_postprocessing_fn=lambda m: {**m, "resumed_from_round": done})],
    )


@dataclass
class TrainOutcome:
    booster: xgb.Booster
    metrics: dict[str, float]
    history: list[dict[str, float]]
    rounds: int


def fit(train_ds: "ray.data.Dataset", valid_ds: "ray.data.Dataset", features: FeatureSet,  # noqa: F821
        params: dict[str, Any], settings: TrainSettings, storage_path: Path, name: str,
        pos_weight: float) -> TrainOutcome:
    """Train with ``settings.num_workers`` workers; survive ``max_failures`` worker deaths."""
    threads = max(1, math.ceil(settings.cpus_per_worker))
    config = {
        "feature_names": features.names,
        "params": booster_params(params, threads, pos_weight, settings.seed),
        "num_boost_round": settings.num_boost_round,
        "early_stopping_rounds": settings.early_stopping_rounds,
        "report_every": settings.report_every,
    }
    trainer = XGBoostTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=settings.num_workers,
                                     resources_per_worker={"CPU": settings.cpus_per_worker}),
        datasets={"train": train_ds, "validation": valid_ds},
        run_config=RunConfig(
            name=name,
            storage_path=str(storage_path.absolute()),
            failure_config=FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    booster = _best_rounds(RayTrainReportCallback.get_model(result.checkpoint))
    return TrainOutcome(booster, dict(result.metrics or {}), _history(result), booster.num_boosted_rounds())


def _best_rounds(booster: xgb.Booster) -> xgb.Booster:
    """The model cut at its best validation round when early stopping kicked in."""
    best = booster.attr("best_iteration")
    return booster[: int(best) + 1] if best is not None else booster


def _history(result: Any) -> list[dict[str, float]]:
    """Reported metrics, one dict per report (every ``report_every`` rounds)."""
    frame = getattr(result, "metrics_dataframe", None)
    if frame is None or len(frame) == 0:
        return [dict(result.metrics or {})]
    return [{k: float(v) for k, v in row.items() if isinstance(v, (int, float, np.floating))}
            for row in frame.to_dict("records")]
