"""Ray Tune search over the XGBoost parameters: Optuna (TPE) proposes, ASHA stops weak trials
early from the validation AUC reported every ``report_every`` rounds. A trial is either one
XGBoost process (one CPU) or a whole distributed Ray Train run, as settings decide."""
from __future__ import annotations

from typing import Any

import numpy as np
import ray
import xgboost as xgb
from ray import tune
from ray.train import FailureConfig, RunConfig
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from core.settings import Settings
from features.feature_set import FeatureSet
from ml.data import dataset_pos_weight, frame_splits, scale_pos_weight
from ml.training.ray_train import WorkerShards, booster_params, make_trainer, shards
from ml.training.reporting import ReportEveryN

METRIC = "validation-auc"

SEARCH_SPACE: dict[str, Any] = {
    "eta": tune.loguniform(0.01, 0.3),
    "max_depth": tune.randint(2, 9),
    "min_child_weight": tune.loguniform(1, 50),
    "subsample": tune.uniform(0.5, 1.0),
    "colsample_bytree": tune.uniform(0.4, 1.0),
    "lambda": tune.loguniform(0.1, 20),
    "alpha": tune.loguniform(1e-3, 5),
    "gamma": tune.uniform(0, 3),
}


def _report_to_tune(metrics: dict[str, float], _: xgb.Booster) -> None:
    tune.report(metrics)


def single_worker_trial(config: dict[str, Any], train: tuple, valid: tuple, names: list[str],
                        fixed: dict[str, Any]) -> None:
    """One trial: plain XGBoost on this worker's CPU(s)."""
    (X, y), (Xv, yv) = train, valid
    params = booster_params({**fixed["params"], **config}, fixed["threads"], scale_pos_weight(y), fixed["seed"])
    dtrain = xgb.QuantileDMatrix(X, label=y, feature_names=names, max_bin=params.get("max_bin"))
    dvalid = xgb.QuantileDMatrix(Xv, label=yv, feature_names=names, max_bin=params.get("max_bin"), ref=dtrain)
    xgb.train(params, dtrain, num_boost_round=fixed["num_boost_round"],
              evals=[(dtrain, "train"), (dvalid, "validation")],
              early_stopping_rounds=fixed["early_stopping_rounds"], verbose_eval=False,
              callbacks=[ReportEveryN(fixed["report_every"], _report_to_tune)])


def distributed_trial(config: dict[str, Any], worker_shards: WorkerShards, names: list[str],
                      fixed: dict[str, Any]) -> None:
    """One trial: a Ray Train run on the search's worker shards whose reports flow back to Tune."""
    settings: Settings = fixed["settings"]
    t = settings.train
    make_trainer(worker_shards, names, {**t.params, **config}, t, fixed["pos_weight"], RunConfig(
        name=f"train-{tune.get_context().get_trial_id()}",  # unique: a run of the same name is resumed
        storage_path=settings.results_uri,
        # workers that cannot be placed fail the trial after a few attempts instead of retrying forever
        failure_config=FailureConfig(  # type: ignore[call-arg]  # Train v2's class at runtime, typed as v1's
            max_failures=t.max_failures, controller_failure_limit=3),
        callbacks=[TuneReportCallback()],  # type: ignore[list-item]  # v2's RunConfig takes v2 callbacks
    )).fit()


def search(settings: Settings, rows: ray.data.Dataset, features: FeatureSet,
           trials: int) -> tune.ResultGrid:
    """Run the search on ``rows`` (training and validation rows, ``SPLIT`` column); every trial's
    reports (``validation-auc`` every N rounds) are kept."""
    t, s = settings.train, settings.tune
    names = features.names
    resources: tune.PlacementGroupFactory | dict[str, float]
    if s.distributed_trials:
        fixed = {"settings": settings, "pos_weight": dataset_pos_weight(rows)}
        trainable = tune.with_parameters(distributed_trial, worker_shards=shards(rows, t.num_workers),
                                         names=names, fixed=fixed)
        # The trial driver only waits: no CPU (its Train run reserves its workers' CPUs itself), but
        # Tune refuses an empty bundle, so a token of memory. As many trials at once as Train runs fit.
        resources = tune.PlacementGroupFactory([{"memory": 2**20}])
        max_concurrent = max(1, int(ray.cluster_resources().get("CPU", 1) // (t.num_workers * t.cpus_per_worker)))
    else:
        train, valid = frame_splits(rows.to_pandas(), features)
        fixed = {"params": t.params, "threads": max(1, int(np.ceil(s.cpus_per_trial))), "seed": t.seed,
                 "num_boost_round": t.num_boost_round, "early_stopping_rounds": t.early_stopping_rounds,
                 "report_every": t.report_every}
        trainable = tune.with_parameters(
            single_worker_trial,
            train=train, valid=valid,
            names=names, fixed=fixed)
        resources = {"CPU": s.cpus_per_trial}
        max_concurrent = None  # as many as fit
    max_reports = max(1, t.num_boost_round // t.report_every)
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space=SEARCH_SPACE,
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(metric=METRIC, mode="max", seed=s.seed),
            scheduler=ASHAScheduler(metric=METRIC, mode="max", max_t=max_reports,
                                    grace_period=min(s.grace_reports, max_reports)),
            num_samples=trials,
            max_concurrent_trials=max_concurrent,
        ),
        run_config=tune.RunConfig(storage_path=settings.results_uri,
                                  name="tune", verbose=1),
    )
    return tuner.fit()
