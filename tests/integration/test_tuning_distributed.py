"""Tune trials that are each a distributed Ray Train run (``CHURN_TUNE__DISTRIBUTED_TRIALS``), on a
Ray cluster of this machine's size (2 CPUs: one 2-worker Train run at a time), as
``churn tune`` starts it. The search runs once for the module, inside its Ray session."""
from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import ray
from ray.util import placement_group_table
from ray.util.state import list_actors

import tuning.search
from core.ray_session import ray_session
from core.settings import Settings
from ml.training.pipeline import split_datasets
from ml.training.ray_train import shards
from tuning.search import METRIC, search

from support import synthetic_customers, write_snapshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_every_local_session_serves_the_state_api_ray_train_watches(tmp_path):
    # Ray Train's placement-group cleaner asks the state API about its controller in every run
    ray.shutdown()
    with ray_session(Settings(state_dir=tmp_path, ray_num_cpus=2)):  # single-worker trials, the default
        assert isinstance(list_actors(), list)


@pytest.fixture(scope="module")
def distributed(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """Three distributed trials, counting how often the rows are split into worker shards; the
    Ray session stays up until the module ends (the tests query its placement groups)."""
    settings = Settings(state_dir=tmp_path_factory.mktemp("distributed"), ray_num_cpus=2,
                        train={"num_workers": 2, "cpus_per_worker": 1, "num_boost_round": 40, "report_every": 10,
                               "cv_folds": 0},
                        tune={"distributed_trials": True, "grace_reports": 1})
    frame, features = synthetic_customers(4_000)
    ray.shutdown()  # the earlier modules' shared cluster: this one starts as `churn tune` does
    splits: list[tuple] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tuning.search, "shards", lambda *a: splits.append(a) or shards(*a))
        with ray_session(settings):
            rows, _ = split_datasets(write_snapshot(settings, frame, features), settings)
            results = search(settings, rows, features, trials=3)
            yield SimpleNamespace(results=results, splits=splits)


def test_distributed_trials_all_complete(distributed):
    results = distributed.results
    assert len(results) == 3 and not results.errors


def test_distributed_trials_share_one_split_of_the_rows(distributed):
    assert len(distributed.splits) == 1, "the trials share one split of the rows into worker shards"


def test_each_distributed_trial_reports_the_validation_auc(distributed):
    for result in distributed.results:
        assert METRIC in result.metrics_dataframe, "each trial reports the validation AUC"


def test_the_best_distributed_trial_auc_is_plausible(distributed):
    best = distributed.results.get_best_result(metric=METRIC, mode="max", scope="all").metrics_dataframe[METRIC].max()
    assert 0.65 < best < 0.99


def test_distributed_trials_run_one_after_another_and_free_their_workers(distributed):
    # a trial ASHA stopped is freed by Ray Train's placement-group cleaner, which polls
    deadline = time.monotonic() + 60
    while (held := _held_placement_groups()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not held, f"trials left their workers' CPUs reserved: {held}"


def _held_placement_groups() -> list[dict]:
    return [pg for pg in placement_group_table().values() if pg["state"] == "CREATED"]
