"""One XGBoost callback that reports the latest evaluation metrics every N rounds: to Ray Train
with a checkpoint (a distributed run), or to Ray Tune (a single-process trial). Reporting every
round would pay a round trip (and a checkpoint) per tree."""
from __future__ import annotations

from collections.abc import Callable

import xgboost as xgb

Metrics = dict[str, float]
Report = Callable[[Metrics, xgb.Booster], None]


def latest_metrics(evals_log: dict[str, dict[str, list[float]]]) -> Metrics:
    """``{"validation-auc": 0.83, ...}``: each metric's value after the last round."""
    return {f"{data}-{name}": float(values[-1]) for data, metrics in evals_log.items()
            for name, values in metrics.items()}


class ReportEveryN(xgb.callback.TrainingCallback):
    """Calls ``report(metrics, booster)`` after every ``every``-th round and, with ``at_end``,
    once more after the last round when that was not a report round (so the final model is
    always reported)."""

    def __init__(self, every: int, report: Report, at_end: bool = False) -> None:
        super().__init__()
        self.every, self.report, self.at_end = every, report, at_end
        self._metrics: Metrics = {}
        self._reported_round: int | None = None

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        self._metrics = latest_metrics(evals_log)
        if (epoch + 1) % self.every == 0:
            self._reported_round = epoch
            self.report(self._metrics, model)
        return False  # never stops training

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        if self.at_end and self._reported_round != model.num_boosted_rounds() - 1:
            self.report(self._metrics, model)
        return model
