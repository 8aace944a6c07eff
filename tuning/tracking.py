"""Every Tune trial as an MLflow run nested under the search's parent run."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

import mlflow
from ray import tune

from tuning.search import METRIC

if TYPE_CHECKING:
    from ray.tune import Result


def log_trials(results: tune.ResultGrid, tags: dict[str, str]) -> int:
    """One nested run per trial: its sampled parameters and its metrics at every report."""
    logged = 0
    for i, result in enumerate(cast("Iterable[Result]", results)):
        assert result.config is not None
        with mlflow.start_run(run_name=f"trial-{i:03d}", nested=True, tags=tags):
            mlflow.log_params(result.config)
            frame = result.metrics_dataframe
            if frame is not None:
                for row in frame.to_dict("records"):
                    step = int(row.get("training_iteration", 0))
                    mlflow.log_metrics({k.replace("-", "_"): float(v) for k, v in row.items()
                                        if "-" in k and isinstance(v, (int, float)) and not math.isnan(v)}, step=step)
            if result.error:
                mlflow.set_tag("error", str(result.error)[:500])
        logged += 1
    return logged


def best_config(results: tune.ResultGrid) -> tuple[dict, float]:
    best = results.get_best_result(metric=METRIC, mode="max", scope="all")
    assert best.config is not None and best.metrics is not None
    frame = best.metrics_dataframe
    score = float(frame[METRIC].max()) if frame is not None and METRIC in frame else float(best.metrics[METRIC])
    return dict(best.config), score
