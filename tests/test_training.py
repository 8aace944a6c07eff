"""Ray Train XGBoost, MLflow tracking/registry and champion/challenger promotion (real Ray,
real MLflow on SQLite; PostgreSQL when reachable)."""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pytest
import ray
from conftest import register_model, synthetic_customers, write_snapshot
from mlflow.tracking import MlflowClient

from core.settings import Settings
from ml import promotion, registry
from ml.training.pipeline import split_datasets, train_and_register
from ml.training.ray_train import fit, shards
from tuning.search import METRIC, search

pytestmark = pytest.mark.slow


def _settings(tmp_path: Path, **train) -> Settings:
    return Settings(state_dir=tmp_path, train={"num_boost_round": 40, "report_every": 10, "cv_folds": 3, **train})


def test_train_logs_registers_and_reproduces(ray_cluster, tmp_path):
    settings = _settings(tmp_path)
    frame, features = synthetic_customers(5_000)
    snap = write_snapshot(settings, frame, features)
    first = train_and_register(settings, snap)
    second = train_and_register(settings, snap)
    assert first.metrics == second.metrics, "same snapshot + seed + config -> same metrics"
    assert 0.7 < first.metrics["holdout_roc_auc"] < 0.95 and len(first.cv_auc) == 3

    client = MlflowClient()
    mv = client.get_model_version_by_alias(settings.registry.model_name, "challenger")
    assert str(mv.version) == second.version
    assert mv.tags["snapshot_id"] == snap.id and mv.tags["schema_hash"] == features.schema_hash
    assert float(mv.tags["holdout_auc"]) == pytest.approx(first.metrics["holdout_roc_auc"], abs=1e-5)
    assert mv.tags["cv_auc"]
    run = client.get_run(first.run_id)
    assert {"eta", "max_depth", "seed", "scale_pos_weight"} <= set(run.data.params)
    history = client.get_metric_history(first.run_id, "validation_auc")
    assert len(history) >= 2 and all(h.step % 10 == 0 for h in history), "metrics every N rounds"
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/roc_pr.png", "evaluation/lift_gain.png",
            "evaluation/calibration_scores.png", "evaluation/importance.png"} <= artifacts
    model = mlflow.models.get_model_info(f"models:/{settings.registry.model_name}/{mv.version}")
    assert model.signature is not None and model.saved_input_example_info is not None
    report = first.report_path.read_text()
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


def test_promotion_needs_a_margin_and_can_roll_back(ray_cluster, tmp_path):
    settings = _settings(tmp_path, cv_folds=0)
    frame, features = synthetic_customers(5_000)
    snap = write_snapshot(settings, frame, features)
    noise = frame.assign(label=np.random.default_rng(9).permutation(frame["label"].to_numpy()))
    client = registry.setup(settings)
    weak = register_model(settings, write_snapshot(settings, noise, features, "20260630-noise"), alias="challenger")
    first = promotion.decide(settings, client)
    assert first.promoted and first.reason == "first champion" and first.challenger == str(weak.version)

    strong = train_and_register(settings, snap)
    decision = promotion.decide(settings, client)
    assert decision.promoted, decision.reason
    assert decision.scores["challenger_auc"] > decision.scores["champion_auc"]
    tags = client.get_model_version(settings.registry.model_name, strong.version).tags
    assert tags["promotion_decision"] == "promoted" and tags["previous_champion"] == str(weak.version)
    assert "ROC-AUC" in tags["promotion_reason"]

    train_and_register(settings, snap)  # the same model again: no gain, below the margin
    rejected = promotion.decide(settings, client)
    assert not rejected.promoted and "margin" in rejected.reason
    assert str(client.get_model_version_by_alias(settings.registry.model_name, "champion").version) == strong.version

    assert promotion.rollback(settings, client) == (strong.version, str(weak.version))
    assert str(client.get_model_version_by_alias(settings.registry.model_name, "champion").version) == str(weak.version)


def test_tune_search_runs_every_trial_and_reports_every_n_rounds(ray_cluster, tmp_path):
    settings = _settings(tmp_path, cv_folds=0)
    frame, features = synthetic_customers(4_000)
    rows, _ = split_datasets(write_snapshot(settings, frame, features), settings)
    results = search(settings, rows, features, trials=2)
    assert len(results) == 2 and not results.errors
    for result in results:
        reported = result.metrics_dataframe
        assert METRIC in reported and len(reported) >= 1, "each trial reports the validation AUC"
    best = results.get_best_result(metric=METRIC, mode="max", scope="all").metrics_dataframe[METRIC].max()
    assert 0.65 < best < 0.99


def _postgres_uri() -> str | None:
    try:
        import psycopg2

        psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=2).close()
        return "postgresql://postgres@127.0.0.1:5432/test"
    except Exception:
        return None


def test_registry_on_postgresql(tmp_path):
    uri = _postgres_uri()
    if uri is None:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 (database 'test'): the SQL-backend test did not run")
    name = f"churn-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(state_dir=tmp_path, mlflow_tracking_uri=uri,
                        registry={"model_name": name, "experiment": name})
    frame, features = synthetic_customers(1_000)
    snap = write_snapshot(settings, frame, features)
    client = registry.setup(settings)
    try:
        version = register_model(settings, snap, alias="champion")
        loaded = registry.load(settings, "champion")
        assert loaded.version == str(version.version) and loaded.schema_hash == features.schema_hash
        assert mlflow.get_tracking_uri().startswith("postgresql://")
    finally:
        client.delete_registered_model(name)
        client.delete_experiment(mlflow.get_experiment_by_name(name).experiment_id)
