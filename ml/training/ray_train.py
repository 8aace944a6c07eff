"""Distributed XGBoost on Ray Train.

The driver splits the materialised rows into one shard per worker (``shards``) and hands the
shards over in the loop's config; each worker fetches its shard's blocks, builds QuantileDMatrix
and joins XGBoost's collective (set up by ``XGBoostTrainer``). Not the ``datasets=`` argument:
for a materialised dataset that XGBoost reads whole, Ray Train's streaming split only adds a
cold split-coordinator process and streaming through it (load_tests/bench_train.py measures the
hand-off).

Metrics and a checkpoint are reported every ``report_every`` rounds (``ReportEveryN``). After a
worker dies, Ray Train restarts the group and every worker resumes from the last checkpoint.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.train
import xgboost as xgb
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.xgboost import XGBoostTrainer

from core.schema import LABEL
from core.settings import TrainSettings
from features.feature_set import FeatureSet, feature_matrix
from ml.data import SPLIT, TRAIN, VALIDATION
from ml.training.reporting import ReportEveryN

log = logging.getLogger(__name__)
CHECKPOINT_MODEL = "model.ubj"
SHARDS = "shards"
"""Loop-config key of the workers' shards (by world rank) of the training and validation rows,
told apart by ``SPLIT``."""
WorkerShards = list[list[ray.ObjectRef]]
"""Per worker (by world rank), the refs of its shard's Arrow blocks: what ``shards`` returns."""


def booster_params(params: dict[str, Any], threads: int, pos_weight: float, seed: int) -> dict[str, Any]:
    return {**params, "objective": "binary:logistic", "eval_metric": ["logloss", "auc"],
            "nthread": threads, "scale_pos_weight": pos_weight, "seed": seed}


def shards(rows: ray.data.Dataset, workers: int) -> WorkerShards:
    """``rows`` (materialised) in ``workers`` shards whose row counts differ by at most one, each
    as the refs of its Arrow blocks, for the ``SHARDS`` config key. Every row lands in one shard:
    ``split(equal=True)`` would drop the remainder of an uneven division. Refs, not datasets: a
    worker then only fetches objects, and never runs Ray Data while the workers hold every CPU
    (which warns that the dataset job will hang).

    On a cluster the blocks are copied to the driver's node first: a block stored on a worker node
    dies with it, and rebuilding it needs CPUs the training workers hold (a hang)."""
    total = rows.count()
    parts = [part.to_arrow_refs() for part in rows.split_at_indices([total * i // workers for i in range(1, workers)])]
    if len([n for n in ray.nodes() if n["Alive"]]) > 1:
        parts = [[ray.put(ray.get(ref)) for ref in part] for part in parts]
    return parts


def shard_matrices(config: dict[str, Any], max_bin: int | None = None) -> tuple[xgb.QuantileDMatrix, ...]:
    """This worker's shard (``config[SHARDS]``) as training and validation QuantileDMatrix (bins
    straight from the Arrow blocks' float32 copy, no pandas frame; the validation matrix shares
    the training bins); ``max_bin`` must be the booster's."""
    names, shard = config["feature_names"], config[SHARDS][ray.train.get_context().get_world_rank()]
    blocks = [block for block in ray.get(shard) if block.num_rows]
    if not blocks:
        raise ValueError("this training worker received no rows: use fewer workers for so few rows")
    table = pa.concat_tables(blocks)
    matrices: list[xgb.QuantileDMatrix] = []
    for part in (TRAIN, VALIDATION):
        rows = table.filter(pc.equal(table.column(SPLIT), part))
        if rows.num_rows == 0:
            raise ValueError(f"this training worker received no {part} rows: use fewer workers for so few rows")
        matrices.append(xgb.QuantileDMatrix(feature_matrix(rows, names), label=rows.column(LABEL).to_numpy(),
                                            feature_names=names, max_bin=max_bin,
                                            ref=matrices[0] if matrices else None))
    return tuple(matrices)


def report_checkpoint(metrics: dict[str, float], booster: xgb.Booster) -> None:
    """Report ``metrics`` to Ray Train; the first worker attaches the model as a checkpoint."""
    if ray.train.get_context().get_world_rank() not in (0, None):
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        booster.save_model(str(Path(folder, CHECKPOINT_MODEL)))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


def load_checkpoint(checkpoint: Checkpoint) -> xgb.Booster:
    """The model a ``report_checkpoint`` call saved."""
    with checkpoint.as_directory() as folder:
        booster = xgb.Booster()
        booster.load_model(str(Path(folder, CHECKPOINT_MODEL)))
        return booster


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    dtrain, dvalid = shard_matrices(config, config["params"].get("max_bin"))
    checkpoint = ray.train.get_checkpoint()
    start_model = load_checkpoint(checkpoint) if checkpoint else None
    done = start_model.num_boosted_rounds() if start_model else 0
    if done:
        log.info("resuming from checkpoint", extra={"rounds_done": done})

    def report(metrics: dict[str, float], booster: xgb.Booster) -> None:
        report_checkpoint({**metrics, "resumed_from_round": done}, booster)

    xgb.train(
        config["params"], dtrain,
        num_boost_round=max(config["num_boost_round"] - done, 0),
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=config["early_stopping_rounds"],
        xgb_model=start_model,
        verbose_eval=False,
        callbacks=[ReportEveryN(config["report_every"], report, at_end=True)],
    )


@dataclass
class TrainOutcome:
    booster: xgb.Booster
    metrics: dict[str, float]
    history: list[dict[str, float]]
    rounds: int


def make_trainer(worker_shards: WorkerShards, names: list[str], params: dict[str, Any],
                 settings: TrainSettings, pos_weight: float, run_config: RunConfig) -> XGBoostTrainer:
    """The XGBoostTrainer of one run (``fit``'s, or a Tune trial's): ``settings.num_workers``
    workers, each training on its shard of ``worker_shards`` (from ``shards``: split once, shared
    by every trial of a search) with the worker loop above."""
    threads = max(1, math.ceil(settings.cpus_per_worker))
    config = {
        "feature_names": names,
        SHARDS: worker_shards,
        "params": booster_params(params, threads, pos_weight, settings.seed),
        "num_boost_round": settings.num_boost_round,
        "early_stopping_rounds": settings.early_stopping_rounds,
        "report_every": settings.report_every,
    }
    return XGBoostTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=settings.num_workers,
                                     resources_per_worker={"CPU": settings.cpus_per_worker},
                                     placement_strategy=settings.placement_strategy),
        run_config=run_config,
    )


def fit(rows: ray.data.Dataset, features: FeatureSet, params: dict[str, Any],
        settings: TrainSettings, storage_uri: str, name: str, pos_weight: float) -> TrainOutcome:
    """Train on the train rows of ``rows`` (a dataset with a ``SPLIT`` column), stop early on its
    validation rows, with ``settings.num_workers`` workers; survive ``max_failures`` worker deaths."""
    trainer = make_trainer(shards(rows, settings.num_workers), features.names, params, settings, pos_weight, RunConfig(
        name=name,
        storage_path=storage_uri,
        failure_config=FailureConfig(max_failures=settings.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=2),
    ))
    result = trainer.fit()
    assert result.checkpoint is not None
    booster = _best_rounds(load_checkpoint(result.checkpoint))
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
