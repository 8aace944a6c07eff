"""The MLflow model registry: a champion round trip on the embedded SQLite store (registered once
for the module), the error for a missing alias, and the SQL backend on PostgreSQL when one is
reachable."""
from __future__ import annotations

import uuid

import mlflow
import numpy as np
import pytest

from core.settings import Settings
from ml import registry

from support import register_model, synthetic_customers, write_snapshot


@pytest.fixture(scope="module")
def loaded(module_settings, module_champion):
    return registry.load(module_settings, "champion")


def test_registered_champion_loads_as_its_version(module_champion, loaded):
    assert loaded.version == str(module_champion.version)


def test_registered_champion_loads_with_its_feature_schema(module_snapshot, loaded):
    assert loaded.schema_hash == module_snapshot.feature_set.schema_hash


def test_registered_champion_is_tagged_with_its_snapshot(module_snapshot, loaded):
    assert loaded.tags["snapshot_id"] == module_snapshot.id


def test_registered_champion_predicts_probabilities(module_snapshot, loaded):
    X = module_snapshot.to_pandas()[loaded.features.names].to_numpy("float32")
    proba = loaded.booster.inplace_predict(X)
    assert proba.shape == (len(X),) and np.all((proba > 0) & (proba < 1))


def test_missing_alias_is_a_clear_error(settings):
    with pytest.raises(registry.ModelNotFound, match="churn train"):
        registry.load(settings, "champion")


def _postgres_uri() -> str | None:
    try:
        import psycopg2

        psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=2).close()
        return "postgresql://postgres@127.0.0.1:5432/test"
    except Exception:
        return None


@pytest.mark.slow
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
