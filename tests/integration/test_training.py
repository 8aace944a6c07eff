"""Ray Train XGBoost on a real local Ray cluster with MLflow tracking and registry (SQLite):
what one training run logs and registers (two runs made once for the module), the worker
shards, and the resume from a checkpoint after a worker is killed."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pytest
import ray

from core.settings import Settings
from ml import registry
from ml.training.pipeline import split_datasets, train_and_register
from ml.training.ray_train import fit, shards

from support import synthetic_customers, write_snapshot

pytestmark = pytest.mark.slow


def _settings(tmp_path: Path, **train) -> Settings:
    return Settings(state_dir=tmp_path, train={"num_boost_round": 40, "report_every": 10, "cv_folds": 3, **train})


@pytest.fixture(scope="module")
def trained(ray_cluster, tmp_path_factory) -> SimpleNamespace:
    """The same snapshot trained and registered twice."""
    settings = _settings(tmp_path_factory.mktemp("train"))
    frame, features = synthetic_customers(5_000)
    snap = write_snapshot(settings, frame, features)
    first = train_and_register(settings, snap)
    second = train_and_register(settings, snap)
    return SimpleNamespace(settings=settings, features=features, snap=snap, first=first, second=second)


@pytest.fixture
def client(trained):
    """An MLflow client on the module's store (an earlier test may have pointed MLflow elsewhere)."""
    return registry.setup(trained.settings)


@pytest.fixture
def challenger(trained, client):
    return client.get_model_version_by_alias(trained.settings.registry.model_name, "challenger")


def test_training_twice_gives_the_same_metrics(trained):
    assert trained.first.metrics == trained.second.metrics, "same snapshot + seed + config -> same metrics"


def test_holdout_auc_is_plausible_and_cross_validation_has_three_folds(trained):
    assert 0.7 < trained.first.metrics["holdout_roc_auc"] < 0.95 and len(trained.first.cv_auc) == 3


def test_the_latest_model_is_registered_as_challenger(trained, challenger):
    assert str(challenger.version) == trained.second.version


def test_the_challenger_is_tagged_with_its_snapshot_schema_and_aucs(trained, challenger):
    assert challenger.tags["snapshot_id"] == trained.snap.id
    assert challenger.tags["schema_hash"] == trained.features.schema_hash
    assert float(challenger.tags["holdout_auc"]) == pytest.approx(trained.first.metrics["holdout_roc_auc"], abs=1e-5)
    assert challenger.tags["cv_auc"]


def test_the_run_logs_the_booster_params(trained, client):
    run = client.get_run(trained.first.run_id)
    assert {"eta", "max_depth", "seed", "scale_pos_weight"} <= set(run.data.params)


def test_validation_auc_is_logged_every_report_interval(trained, client):
    history = client.get_metric_history(trained.first.run_id, "validation_auc")
    assert len(history) >= 2 and all(h.step % 10 == 0 for h in history), "metrics every N rounds"


def test_the_evaluation_report_and_plots_are_logged(trained, client):
    artifacts = {a.path for a in client.list_artifacts(trained.first.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/roc_pr.png", "evaluation/lift_gain.png",
            "evaluation/calibration_scores.png", "evaluation/importance.png"} <= artifacts


def test_the_registered_model_has_a_signature_and_an_input_example(trained, challenger):
    model = mlflow.models.get_model_info(f"models:/{trained.settings.registry.model_name}/{challenger.version}")
    assert model.signature is not None and model.saved_input_example_info is not None


def test_the_evaluation_report_has_the_campaign_value_and_the_lift(trained):
    report = trained.first.report_path.read_text()
    assert "Campaign value" in report and "Lift by decile" in report


def test_worker_shards_hold_every_row_once(ray_cluster):
    rows = ray.data.range(1001, override_num_blocks=3).materialize()
    parts = [pa.concat_tables(ray.get(refs)) for refs in shards(rows, 2)]
    assert sorted(part.num_rows for part in parts) == [500, 501]
    ids = np.concatenate([part.column("id").to_numpy() for part in parts])
    assert sorted(ids.tolist()) == list(range(1001))


def test_killed_worker_resumes_from_the_last_checkpoint(ray_cluster, tmp_path):
    settings = _settings(tmp_path, num_boost_round=400, report_every=10, early_stopping_rounds=400)
    rng = np.random.default_rng(3)
    n = 150_000
    frame = pd.DataFrame(rng.normal(size=(n, 4)).astype("float32"),
                         columns=["monthly_price", "tickets_30d", "tenure_days", "contract_type"])
    frame["label"] = (frame.sum(axis=1) + rng.normal(size=n) > 1).astype("int8")
    frame.insert(0, "customer_id", [f"K{i}" for i in range(n)])
    _, features = synthetic_customers(10)
    snap = write_snapshot(settings, frame, features)
    rows, _ = split_datasets(snap, settings)
    storage = tmp_path / "results"
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(result=fit(
        rows, features, {"max_depth": 8, "eta": 0.05, "tree_method": "hist"}, settings.train,
        storage, "killed", 1.0)))
    runner.start()
    deadline, seen = time.time() + 300, set()
    while len(seen) < 3 and time.time() < deadline:  # a few reports reached the controller
        seen |= {p.name for p in storage.glob("killed/checkpoint_*")}
        time.sleep(0.2)
    time.sleep(2)
    workers = _train_worker_pids()
    assert workers, "training workers should be running"
    os.kill(workers[0], signal.SIGKILL)
    runner.join(timeout=600)
    result = outcome["result"]
    assert result.metrics["resumed_from_round"] >= 10, "restarted from a checkpoint, not from round 0"
    assert result.rounds > result.metrics["resumed_from_round"], "kept boosting after the resume"


def _train_worker_pids() -> list[int]:
    """Ray Train worker processes of this test's Ray cluster (descendants of its raylet)."""
    node = ray._private.worker.global_worker.node
    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    return [p.pid for p in raylet.children(recursive=True) if "RayTrainWorker" in " ".join(p.cmdline())]


