"""The whole pipeline with its data on a real S3 server (``CHURN_DATA_ROOT=s3://...``, the
SeaweedFS of ``churn services up --s3``), each step a ``churn`` command as a user runs it: raw data,
snapshots, MLflow artifacts, Ray Train checkpoints, scores, campaigns and drift reports all land in
the bucket, nothing beside the state folder's stores; the same raw data on local disk gives the same
snapshot, model and scores."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow.fs as pafs
import pytest

from core import storage
from core.object_store import s3_env
from core.processes import free_port
from core.settings import Settings
from features.snapshot import open_snapshot
from ml.scoring.batch import open_scores
from ray_jobs.supervisors.redis_server import RedisServer

from _s3 import running_s3

pytestmark = pytest.mark.slow

STEPS = {"CHURN_GENERATE__CUSTOMERS": "1500", "CHURN_GENERATE__DAYS": "60", "CHURN_TRAIN__NUM_BOOST_ROUND": "60",
         "CHURN_TRAIN__CV_FOLDS": "1", "CHURN_TRAIN__REPORT_EVERY": "20", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}


def churn(env: dict[str, str], *args: str, exit_codes: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("churn")), *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode in exit_codes, f"churn {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(state_dir=Path(env["CHURN_STATE_DIR"]), data_root=env.get("CHURN_DATA_ROOT"),
                    redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(scope="module")
def on_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """generate -> etl -> train -> promote -> materialize -> score -> campaign -> drift on S3, with
    the project's Redis; the environment of those steps, and the same variables of the S3 server."""
    state = tmp_path_factory.mktemp("s3-pipeline")
    with running_s3(state) as s3:
        env = {**os.environ, **STEPS, "CHURN_STATE_DIR": str(state), "CHURN_S3__PORT": str(s3.cfg.port),
               "CHURN_DATA_ROOT": f"s3://{s3.cfg.bucket}/data", "CHURN_REDIS__PORT": str(free_port())}
        redis_server = RedisServer(Settings(state_dir=state, redis_url=None,
                                            redis={"port": int(env["CHURN_REDIS__PORT"])}))
        redis_server.up()
        try:
            for step in (["generate"], ["etl"], ["train"], ["promote"], ["materialize"], ["score"],
                         ["campaign", "--budget", "5000", "--uplift", "none"]):
                churn(env, *step)
            churn(env, "drift", "--reference", "latest", exit_codes=(0, 1, 2))  # 1, 2: warn, critical
            yield env, s3_env(s3.settings)
        finally:
            redis_server.down()


@pytest.fixture(scope="module")
def on_disk(on_s3, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The raw data copied from the bucket to local disk, then etl -> train -> promote -> score there."""
    env_s3, s3_vars = on_s3
    state = tmp_path_factory.mktemp("disk-pipeline")
    env = {**os.environ, **STEPS, "CHURN_STATE_DIR": str(state), "CHURN_REDIS__PORT": str(free_port())}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_vars.items():
            patch.setenv(name, value)
        s3_fs, raw = storage.resolve(storage.join(env_s3["CHURN_DATA_ROOT"], "generated"))
        pafs.copy_files(raw, str(state / "data" / "generated"), source_filesystem=s3_fs,
                        destination_filesystem=pafs.LocalFileSystem())
    for step in (["etl"], ["train"], ["promote"], ["score"]):
        churn(env, *step)
    return env


@pytest.fixture
def s3_env_vars(on_s3, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """This process reaching the pipeline's bucket; the pipeline's settings."""
    for name, value in on_s3[1].items():
        monkeypatch.setenv(name, value)
    return settings_of(on_s3[0])


def listing(uri: str) -> set[str]:
    fs, path = storage.resolve(uri)
    return {i.path[len(path) + 1:].split("/", 1)[0] for i in fs.get_file_info(pafs.FileSelector(path))}


def test_every_dataset_artifact_and_checkpoint_is_in_the_bucket(s3_env_vars):
    settings = s3_env_vars
    assert {"generated", "snapshots", "scores", "campaigns", "reports", "mlartifacts", "ray_results"} <= listing(
        settings.data_uri)
    assert not (settings.state_dir / "data").exists() and not (settings.state_dir / "ray_results").exists()
    assert not (settings.state_dir / "mlartifacts").exists()
    mlflow.set_tracking_uri(settings.tracking_uri)
    champion = mlflow.MlflowClient().get_model_version_by_alias(settings.registry.model_name, "champion")
    assert champion.source.startswith(f"{settings.data_uri}/mlartifacts/") or champion.source.startswith("models:/")
    assert any(name.startswith("train") for name in listing(settings.results_uri))


def test_the_snapshot_on_s3_is_the_one_built_from_local_disk(s3_env_vars, on_disk):
    on_s3_snapshot = open_snapshot(s3_env_vars, "latest")
    local = open_snapshot(settings_of(on_disk), "latest")
    assert on_s3_snapshot.id == local.id
    assert on_s3_snapshot.manifest["rows"] == local.manifest["rows"]
    assert on_s3_snapshot.manifest["profile"] == local.manifest["profile"]


def test_the_model_and_every_score_match_the_local_run(s3_env_vars, on_disk):
    runs = []
    for settings in (s3_env_vars, settings_of(on_disk)):
        mlflow.set_tracking_uri(settings.tracking_uri)
        version = mlflow.MlflowClient().get_model_version_by_alias(settings.registry.model_name, "champion")
        runs.append(mlflow.get_run(version.run_id).data.metrics)
    assert runs[0]["holdout_roc_auc"] == pytest.approx(runs[1]["holdout_roc_auc"], abs=1e-9)
    scores = [open_scores(s, "latest").read_table().to_pandas().sort_values("customer_id", ignore_index=True)
              for s in (s3_env_vars, settings_of(on_disk))]
    assert len(scores[0]) == len(scores[1]) > 0
    assert scores[0]["customer_id"].tolist() == scores[1]["customer_id"].tolist()
    assert (scores[0]["probability"] - scores[1]["probability"]).abs().max() < 1e-6
