"""Which S3 endpoint and keys a process gets: an external endpoint's, or the embedded server's from
the file ``churn services up --s3`` writes."""
from __future__ import annotations

import json
import os

import pytest

from core.object_store import CREDENTIALS_FILE, s3_env, uses_embedded_s3
from core.settings import Settings, get_settings

pytestmark = pytest.mark.usefixtures("clean_env")

EMBEDDED = {"endpoint_url": "http://127.0.0.1:8333", "access_key_id": "churnabc", "secret_access_key": "s3cret"}


def settings(tmp_path, **kwargs) -> Settings:
    return Settings(state_dir=tmp_path, redis_url=None, mlflow_tracking_uri=None, **kwargs)


def started(tmp_path) -> None:
    (tmp_path / "s3").mkdir()
    (tmp_path / "s3" / CREDENTIALS_FILE).write_text(json.dumps(EMBEDDED))


def test_without_a_store_nothing_is_exported(tmp_path):
    assert s3_env(settings(tmp_path)) == {}


def test_the_embedded_servers_endpoint_and_keys_are_exported_once_it_started(tmp_path):
    started(tmp_path)
    env = s3_env(settings(tmp_path))
    assert env["AWS_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == EMBEDDED["endpoint_url"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("churnabc", "s3cret")


def test_a_configured_endpoint_wins_and_leaves_the_keys_to_awss_chain(tmp_path):
    started(tmp_path)
    env = s3_env(settings(tmp_path, s3={"endpoint_url": "http://minio:9000", "region": "eu-west-1"}))
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000" and env["AWS_REGION"] == "eu-west-1"
    assert "AWS_ACCESS_KEY_ID" not in env


def test_awss_own_endpoint_variable_means_an_external_store(tmp_path, monkeypatch):
    started(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere:9000")
    assert not uses_embedded_s3(settings(tmp_path)) and s3_env(settings(tmp_path)) == {}


def test_get_settings_exports_the_embedded_store_and_still_knows_it_is_embedded(tmp_path, monkeypatch):
    started(tmp_path)
    monkeypatch.setenv("CHURN_STATE_DIR", str(tmp_path))
    loaded = get_settings()
    assert os.environ["AWS_ENDPOINT_URL"] == EMBEDDED["endpoint_url"] and uses_embedded_s3(loaded)


def test_a_remote_data_root_puts_artifacts_checkpoints_and_reports_beside_the_data(tmp_path):
    remote = settings(tmp_path, data_root="s3://churn/data/")
    assert remote.artifact_uri == "s3://churn/data/mlartifacts"
    assert remote.results_uri == "s3://churn/data/ray_results"
    assert remote.reports_uri == "s3://churn/data/reports"
    assert settings(tmp_path).results_uri == str(tmp_path.absolute() / "ray_results")
