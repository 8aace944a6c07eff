"""MLflow tracking and the model registry (aliases ``champion`` and ``challenger``, no stages).

A registered version carries what a reader needs to use it safely: the feature schema
(``feature_set.json`` artifact and ``schema_hash`` tag), the snapshot it was trained on,
and its holdout (and cross-validated) metrics as tags.
"""
from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import xgboost as xgb
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.settings import Settings
from features.feature_set import FeatureSet

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
FEATURE_SET_ARTIFACT = "feature_set.json"


class ModelNotFound(LookupError):
    pass


def setup(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists.

    With a local store (SQLite, PostgreSQL), artifacts go to ``settings.artifact_uri`` (a folder or
    ``s3://``); a tracking server (``http://...``) decides its own artifact location.
    """
    mlflow.set_tracking_uri(settings.tracking_uri)
    name = settings.registry.experiment
    if mlflow.get_experiment_by_name(name) is None:
        remote = settings.tracking_uri.startswith(("http://", "https://", "databricks"))
        artifacts = settings.artifact_uri
        location = None if remote else artifacts if "://" in artifacts else Path(artifacts).absolute().as_uri()
        with contextlib.suppress(MlflowException):  # created concurrently
            mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    return MlflowClient()


def log_feature_set(features: FeatureSet) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FEATURE_SET_ARTIFACT
        path.write_text(json.dumps(features.to_json(), indent=1))
        mlflow.log_artifact(str(path))


def log_model(booster: xgb.Booster, features: FeatureSet, example: pd.DataFrame) -> str:
    """Log the booster with its signature, an input example and the feature schema; returns
    the logged model's URI (what gets registered)."""
    from mlflow.models import infer_signature

    proba = booster.inplace_predict(example[features.names].to_numpy(dtype="float32"))
    info = mlflow.xgboost.log_model(booster, name="model", signature=infer_signature(example[features.names], proba),
                                    input_example=example[features.names].head(3), model_format="ubj",
                                    pip_requirements=[f"xgboost=={xgb.__version__}"])
    log_feature_set(features)
    return info.model_uri


def register(client: MlflowClient, settings: Settings, model_uri: str, tags: dict[str, str],
             name: str | None = None,
             description: str = "Customer churn within the label horizon (XGBoost).") -> ModelVersion:
    """Register the run's model as a new version of ``name`` (the churn model by default), tag it
    and give it the ``challenger`` alias."""
    name = name or settings.registry.model_name
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return version


@dataclass
class LoadedModel:
    booster: xgb.Booster
    version: str
    features: FeatureSet
    tags: dict[str, str]

    @property
    def schema_hash(self) -> str:
        return self.features.schema_hash


def version_by_alias(client: MlflowClient, settings: Settings, alias: str,
                     name: str | None = None) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name or settings.registry.model_name, alias)
    except MlflowException:
        return None


def load(settings: Settings, ref: str | int = CHAMPION) -> LoadedModel:
    """A registered model by alias (``champion``) or version number, with its feature schema."""
    client = setup(settings)
    ref = str(ref)
    name = settings.registry.model_name
    mv = client.get_model_version(name, ref) if ref.isdigit() else version_by_alias(client, settings, ref)
    if mv is None:
        raise ModelNotFound(f"no model version '{ref}' of '{name}' in {settings.tracking_uri}: "
                            f"run `churn train` (and `churn promote` for a champion)")
    booster = mlflow.xgboost.load_model(f"models:/{name}/{mv.version}")
    path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=FEATURE_SET_ARTIFACT)
    features = FeatureSet.from_json(json.loads(Path(path).read_text()))
    return LoadedModel(booster, str(mv.version), features, dict(mv.tags))


def tag_version(client: MlflowClient, settings: Settings, version: str, tags: dict[str, Any],
                name: str | None = None) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name or settings.registry.model_name, version, key, str(value))


def recent_runs(settings: Settings, limit: int) -> list[tuple[str, ...]]:
    """(started, run id, name, snapshot, holdout AUC, CV AUC, status) of the latest runs."""
    setup(settings)
    frame = mlflow.search_runs(experiment_names=[settings.registry.experiment], max_results=limit,
                               order_by=["attributes.start_time DESC"])

    def cell(row: Any, key: str, fmt: str = "{}") -> str:
        value = row.get(key)
        return "" if value is None or value != value else fmt.format(value)

    return [(str(r["start_time"])[:19], r["run_id"][:8], cell(r, "tags.mlflow.runName"), cell(r, "tags.snapshot_id"),
             cell(r, "metrics.holdout_roc_auc", "{:.4f}"), cell(r, "metrics.cv_auc_mean", "{:.4f}"), r["status"])
            for r in frame.to_dict("records")]
