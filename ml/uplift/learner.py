"""The uplift model trained with distributed XGBoost on Ray Train: one run fits the baseline on
the uncontacted (control group and untargeted), then each intervention's booster on the customers
who got it, starting from the baseline shifted by the intervention's prior (``UpliftModel``).

Every worker holds its shard of every arm; XGBoost's collective sums the histograms, so each
booster is the one a single machine would grow on all rows. Metrics are reported every
``report_every`` rounds; each finished booster is checkpointed, and a restarted run resumes with
the boosters still to fit.
"""
from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
import ray.train
import xgboost as xgb
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.xgboost import XGBoostTrainer

from core.schema import LABEL
from core.settings import Settings
from features.feature_set import feature_matrix
from ml.data import SPLIT, TRAIN, VALIDATION
from ml.training.reporting import ReportEveryN
from ml.uplift.history import ARM, CONTROL_CODE
from ml.uplift.model import BASELINE, UpliftModel

log = logging.getLogger(__name__)
SHARDS = "shards"


def _matrices(X: np.ndarray, y: np.ndarray, split: np.ndarray, rows: np.ndarray, max_bin: int | None,
              margin: np.ndarray | None) -> tuple[xgb.QuantileDMatrix, xgb.QuantileDMatrix]:
    out: list[xgb.QuantileDMatrix] = []
    for part in (TRAIN, VALIDATION):
        take = rows & (split == part)
        out.append(xgb.QuantileDMatrix(X[take], label=y[take], max_bin=max_bin, ref=out[0] if out else None,
                                       base_margin=None if margin is None else margin[take]))
    return out[0], out[1]


def _fit(name: str, X: np.ndarray, y: np.ndarray, split: np.ndarray, rows: np.ndarray, params: dict[str, Any],
         config: dict[str, Any], margin: np.ndarray | None = None) -> xgb.Booster:
    dtrain, dvalid = _matrices(X, y, split, rows, params.get("max_bin"), margin)

    def report(metrics: dict[str, float], booster: xgb.Booster) -> None:
        ray.train.report({f"{name}_{k.replace('-', '_')}": v for k, v in metrics.items()})

    booster = xgb.train(params, dtrain, num_boost_round=config["num_boost_round"],
                        evals=[(dtrain, "train"), (dvalid, "validation")],
                        early_stopping_rounds=config["early_stopping_rounds"], verbose_eval=False,
                        callbacks=[ReportEveryN(config["report_every"], report)])
    best = booster.attr("best_iteration")
    return booster[: int(best) + 1] if best is not None else booster


def _checkpoint(done: dict[str, xgb.Booster]) -> None:
    """Report the boosters fitted so far (the first worker attaches them as a checkpoint)."""
    metrics = {"boosters_done": float(len(done))}
    if ray.train.get_context().get_world_rank() not in (0, None):
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        for name, booster in done.items():
            booster.save_model(str(Path(folder, f"{name}.ubj")))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


def _restored() -> dict[str, xgb.Booster]:
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        done = {}
        for path in sorted(Path(folder).glob("*.ubj")):
            booster = xgb.Booster()
            booster.load_model(str(path))
            done[path.stem] = booster
    log.info("resuming uplift training", extra={"boosters_done": sorted(done)})
    return done


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    blocks = [b for b in ray.get(config[SHARDS][ray.train.get_context().get_world_rank()]) if b.num_rows]
    table = pa.concat_tables(blocks)
    X = feature_matrix(table, config["feature_names"])
    y = table.column(LABEL).to_numpy()
    arm = table.column(ARM).to_numpy()
    split = table.column(SPLIT).to_numpy(zero_copy_only=False)
    done = _restored()
    if BASELINE not in done:
        done[BASELINE] = _fit(BASELINE, X, y, split, arm <= CONTROL_CODE, config["baseline_params"], config)
        _checkpoint(done)
    margin = done[BASELINE].inplace_predict(X, predict_type="margin")
    for code, name in enumerate(config["interventions"], start=CONTROL_CODE + 1):
        if name not in done:
            start = margin + np.log1p(-config["priors"][name])
            done[name] = _fit(name, X, y, split, arm == code, config["arm_params"], config, start)
            _checkpoint(done)


def _params(params: dict[str, Any], threads: int, seed: int) -> dict[str, Any]:
    return {**params, "objective": "binary:logistic", "eval_metric": ["logloss"], "nthread": threads, "seed": seed}


def worker_shards(rows: pd.DataFrame, columns: list[str], workers: int) -> list[list[ray.ObjectRef]]:
    """The rows in ``workers`` shuffled shards (arms spread evenly), one object ref each."""
    order = np.random.default_rng(0).permutation(len(rows))
    return [[ray.put(pa.Table.from_pandas(rows.iloc[part][columns], preserve_index=False))]
            for part in np.array_split(order, workers)]


def fit_uplift(rows: pd.DataFrame, names: list[str], interventions: list[str], priors: dict[str, float],
               settings: Settings, storage_uri: str, run_name: str) -> tuple[UpliftModel, list[dict[str, float]]]:
    """Train on the train/validation rows of ``rows`` (with ``SPLIT``, ``ARM`` and the label)."""
    t, u = settings.train, settings.uplift
    threads = max(1, math.ceil(t.cpus_per_worker))
    config = {
        "feature_names": names, "interventions": interventions, "priors": priors,
        SHARDS: worker_shards(rows, [*names, LABEL, ARM, SPLIT], t.num_workers),
        "baseline_params": _params(u.baseline_params, threads, t.seed),
        "arm_params": _params(u.arm_params, threads, t.seed),
        "num_boost_round": u.num_boost_round, "early_stopping_rounds": u.early_stopping_rounds,
        "report_every": t.report_every,
    }
    trainer = XGBoostTrainer(
        train_loop_per_worker, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=t.num_workers, resources_per_worker={"CPU": t.cpus_per_worker}),
        run_config=RunConfig(name=run_name, storage_path=storage_uri,
                             failure_config=FailureConfig(max_failures=t.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
    )
    result = trainer.fit()
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as folder:
        boosters = {}
        for name in [BASELINE, *interventions]:
            booster = xgb.Booster()
            booster.load_model(str(Path(folder, f"{name}.ubj")))
            boosters[name] = booster
    frame = getattr(result, "metrics_dataframe", None)
    history = [] if frame is None else [{k: float(v) for k, v in row.items() if isinstance(v, (int, float))}
                                        for row in frame.to_dict("records")]
    model = UpliftModel(names, boosters.pop(BASELINE), boosters, priors)
    return model, history
