"""The Tune search of `churn tune` on a real local Ray cluster (single-worker trials, the default):
every trial runs and reports the validation AUC. The search runs once for the module."""
from __future__ import annotations

import pytest

from core.settings import Settings
from ml.training.pipeline import split_datasets
from tuning.search import METRIC, search

from support import synthetic_customers, write_snapshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(ray_cluster, tmp_path_factory):
    settings = Settings(state_dir=tmp_path_factory.mktemp("tune"),
                        train={"num_boost_round": 40, "report_every": 10, "cv_folds": 0})
    frame, features = synthetic_customers(4_000)
    rows, _ = split_datasets(write_snapshot(settings, frame, features), settings)
    return search(settings, rows, features, trials=2)


def test_tune_search_runs_every_trial(results):
    assert len(results) == 2 and not results.errors


def test_tune_search_reports_every_n_rounds(results):
    for result in results:
        reported = result.metrics_dataframe
        assert METRIC in reported and len(reported) >= 1, "each trial reports the validation AUC"


def test_tune_search_best_trial_auc_is_plausible(results):
    best = results.get_best_result(metric=METRIC, mode="max", scope="all").metrics_dataframe[METRIC].max()
    assert 0.65 < best < 0.99
