"""The platform's storage on a real S3 server (SeaweedFS, as ``churn services up --s3`` starts it):
outputs complete or absent, local copies in and out, the server's start, restart and stop."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from core import outputs, storage
from core.object_store import s3_env
from ray_jobs.supervisors.s3_server import S3Server

from _s3 import running_s3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3-state")) as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A prefix of its own in the server's bucket, with the server's endpoint and keys in the environment."""
    for name, value in s3_env(s3.settings).items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3.cfg.bucket}/{request.node.name}"


def names(uri: str) -> list[str]:
    fs, path = storage.resolve(uri)
    return sorted(i.path[len(path) + 1:] for i in fs.get_file_info(pafs.FileSelector(path, recursive=True,
                                                                                     allow_not_found=True))
                  if i.type == pafs.FileType.File)


def test_the_server_reports_healthy_with_its_bucket(s3):
    status = s3.status()
    assert status.healthy and status.bucket == "churn" and status.pid == s3.running_pid()


def test_a_published_output_has_every_file_and_its_marker_and_no_temporary_left(bucket):
    def write(tmp: str) -> None:
        for i in range(3):
            storage.write_text_atomic(storage.join(tmp, "data", f"part-{i}.txt"), str(i))

    output = outputs.publish(storage.join(bucket, "scores"), "run-1", write)
    assert names(output.uri) == ["_SUCCESS", "data/part-0.txt", "data/part-1.txt", "data/part-2.txt"]
    assert names(storage.join(bucket, "scores")) == ["LATEST", *[f"run-1/{n}" for n in names(output.uri)]]
    assert outputs.resolve(storage.join(bucket, "scores"), "latest", "scores").uri == output.uri


def test_a_failed_write_leaves_nothing_behind(bucket):
    def write(tmp: str) -> None:
        storage.write_text_atomic(storage.join(tmp, "part-0.txt"), "half")
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        outputs.publish(storage.join(bucket, "scores"), "run-2", write)
    assert names(storage.join(bucket, "scores")) == []


def test_a_folder_round_trips_through_local_copies(bucket):
    data = os.urandom(3 * 2**20)
    with storage.local_output(storage.join(bucket, "up")) as local:
        (Path(local) / "sub").mkdir()
        (Path(local) / "sub" / "a.bin").write_bytes(data)
    with storage.local_copy(storage.join(bucket, "up")) as copy:
        assert (Path(copy) / "sub" / "a.bin").read_bytes() == data


def test_a_wrong_key_is_refused_with_the_servers_message(s3, bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
    with pytest.raises(OSError, match=r"(?i)access.denied|signature"):
        storage.write_text_atomic(storage.join(bucket, "x.txt"), "x")


def test_services_up_s3_restarts_on_the_same_keys_and_data(s3, bucket):
    storage.write_text_atomic(storage.join(bucket, "kept.txt"), "kept")
    keys = json.loads((s3.dir / "credentials.json").read_text())
    env = {**os.environ, "CHURN_STATE_DIR": str(s3.settings.state_dir), "CHURN_S3__PORT": str(s3.cfg.port),
           "CHURN_REDIS__PORT": str(s3.cfg.port + 20)}
    churn = [str(Path(sys.executable).with_name("churn")), "services"]
    try:
        assert s3.down()
        assert subprocess.run([*churn, "status"], env={**env, "CHURN_DATA_ROOT": "s3://churn/data"},
                              capture_output=True, text=True).returncode == 1
        shown = subprocess.run([*churn, "up", "--s3"], env=env, capture_output=True, text=True, check=True).stdout
        assert "S3 server healthy" in shown and "CHURN_DATA_ROOT=s3://churn/data" in shown
    finally:
        subprocess.run([*churn, "down"], env=env, capture_output=True)
        s3.up()  # the module's server again, for the tests after this one
    assert json.loads((s3.dir / "credentials.json").read_text()) == keys
    assert storage.read_text(storage.join(bucket, "kept.txt")) == "kept"
