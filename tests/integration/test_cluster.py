"""The pipeline on a multi-node Ray cluster: a head and two worker nodes, each a network namespace
of its own (``churn cluster up``), every step submitted with ``ray job submit --working-dir .``
from the repository as the README says (in a process of its own, with the exports ``churn
cluster up`` prints: Ray reads the token settings once per process) and followed through the Jobs
API; a worker node lost during training."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest

from core.processes import free_port
from core.settings import Settings
from features.snapshot import open_snapshot
from ml.scoring.batch import open_scores
from ray_jobs.supervisors.ray_cluster import ClusterState, LocalCluster
from ray_jobs.supervisors.redis_server import RedisServer

from support import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

TRAIN = {"num_boost_round": 300, "early_stopping_rounds": 300, "report_every": 10, "cv_folds": 1,
         "cpus_per_worker": 0.5}  # two workers fit on one node once the other is lost


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, LocalCluster, ClusterState]]:
    """Its own state folder, Redis and MLflow store."""
    settings = Settings(state_dir=tmp_path_factory.mktemp("cluster-state"), redis_url=None, mlflow_tracking_uri=None,
                        redis={"port": free_port()}, train=TRAIN, generate={"customers": 2_000, "days": 60},
                        cluster={"prefix": "churnt", "subnet": "10.213.9.0/24"})
    redis_server = RedisServer(settings)
    redis_server.up()
    local = LocalCluster(settings)
    try:
        yield settings, local, local.up()
    finally:
        local.down()
        redis_server.down()


_jobs = itertools.count()


def submit(state: ClusterState, entrypoint: str) -> str:
    """``ray job submit --no-wait --working-dir . -- <entrypoint>`` from the repository; the job's id."""
    job = f"churn-test-{os.getpid()}-{next(_jobs)}"
    subprocess.run([str(Path(sys.executable).with_name("ray")), "job", "submit", "--no-wait", "--submission-id", job,
                    "--working-dir", ".", "--", *entrypoint.split()],
                   cwd=REPO, env={**os.environ, **state.client_env}, check=True, capture_output=True, timeout=120)
    return job


def jobs_api(state: ClusterState, path: str) -> dict:
    token = Path(state.token_path).read_text()
    reply = httpx.get(f"{state.dashboard}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    reply.raise_for_status()
    return reply.json()


def wait(state: ClusterState, job: str, timeout_s: float = 600) -> str:
    """The logs of ``job`` once it succeeded (it must)."""
    deadline = time.monotonic() + timeout_s
    while (status := jobs_api(state, f"/api/jobs/{job}")["status"]) not in {"SUCCEEDED", "FAILED", "STOPPED"}:
        assert time.monotonic() < deadline, f"{job} still {status} after {timeout_s:.0f} s"
        time.sleep(2)
    logs = jobs_api(state, f"/api/jobs/{job}/logs")["logs"]
    assert status == "SUCCEEDED", logs[-3000:]
    return logs


def node_of(actors: list[dict], class_name: str) -> set[str]:
    return {a["node_id"] for a in actors if a["class_name"].endswith(class_name)}


@pytest.fixture(scope="module")
def pipeline(cluster) -> dict[str, str]:
    """generate -> etl -> train, each a job submitted from a copy of the repository."""
    state = cluster[2]
    return {step: wait(state, submit(state, f"python -m ray_jobs.{step} {args}".strip()))
            for step, args in (("generate", ""), ("etl", ""), ("train", "--snapshot latest"))}


def test_jobs_from_a_copy_of_the_working_dir_use_the_machines_state(cluster, pipeline):
    settings = cluster[0]
    assert (Path(settings.data_uri) / "generated" / "raw" / "_manifest.json").exists()
    assert any((Path(settings.data_uri) / "snapshots").iterdir())
    mlflow.set_tracking_uri(settings.tracking_uri)
    version = mlflow.MlflowClient().get_model_version_by_alias(settings.registry.model_name, "challenger")
    assert str(version.version) == "1"


def test_spark_executors_and_train_workers_run_on_the_worker_nodes(cluster, pipeline):
    _, local, state = cluster
    nodes = {n["node_id"]: n for n in local.alive_nodes(state)}
    head = {i for i, n in nodes.items() if n["is_head_node"]}
    actors = jobs_api(state, "/api/v0/actors?limit=10000&detail=1")["data"]["result"]["result"]
    executors, trainers = node_of(actors, "RayDPExecutor"), node_of(actors, "RayTrainWorker")
    assert executors and not executors & head
    assert len(trainers) == 2 and not trainers & head, "one Train worker on each worker node"


def test_training_goes_on_from_its_checkpoint_when_a_worker_node_is_lost(cluster, pipeline):
    settings, local, state = cluster
    results = settings.state_dir / "ray_results"
    before = set(results.glob("train-*"))
    job = submit(state, "python -m ray_jobs.train --snapshot latest")
    deadline = time.monotonic() + 300
    while not any(_registered_checkpoints(run) for run in set(results.glob("train-*")) - before):
        assert time.monotonic() < deadline, "no checkpoint registered"
        time.sleep(0.5)
    killed = local.kill_node(state.nodes[2])
    try:
        wait(state, job)
    finally:
        local.restart_node(state.nodes[2])
    mlflow.set_tracking_uri(settings.tracking_uri)
    (run,) = mlflow.search_runs(experiment_names=[settings.registry.experiment], max_results=1,
                                order_by=["start_time DESC"], output_format="list")
    assert killed and run.data.metrics["resumed_from_round"] >= TRAIN["report_every"]
    assert run.data.metrics["rounds"] > run.data.metrics["resumed_from_round"]


def _registered_checkpoints(run: Path) -> list[dict]:
    """The checkpoints Ray Train's controller has taken into the run (on disk is not enough)."""
    try:
        return json.loads((run / "checkpoint_manager_snapshot.json").read_text())["checkpoint_results"]
    except (OSError, ValueError, KeyError):
        return []


def test_batch_scoring_that_loses_a_worker_node_writes_all_scores_or_nothing(cluster, pipeline):
    settings, local, state = cluster
    job = submit(state, "python -m ray_jobs.batch_score --snapshot latest --model challenger --force")
    deadline = time.monotonic() + 300
    while not any(a["state"] == "ALIVE" and a["node_id"] for a in _scoring_actors(state)):
        assert time.monotonic() < deadline, "no scoring actor started"
        time.sleep(0.3)
    victim = {n["node_id"]: n["node_ip"] for n in local.alive_nodes(state)}[_scoring_actors(state)[0]["node_id"]]
    local.kill_node(state.nodes[state.ips.index(victim)])
    try:
        while (status := jobs_api(state, f"/api/jobs/{job}")["status"]) not in {"SUCCEEDED", "FAILED", "STOPPED"}:
            assert time.monotonic() < deadline + 300, f"{job} still {status}"
            time.sleep(2)
    finally:
        local.restart_node(state.nodes[state.ips.index(victim)])
    snapshot = open_snapshot(settings, "latest")
    if status == "SUCCEEDED":
        scores = open_scores(settings)
        assert scores.read_table(["customer_id"]).num_rows == snapshot.manifest["rows"]
    else:  # a clean failure: no output published, nothing half-written left in place
        assert not any(p.name.startswith(snapshot.id) for p in (Path(settings.data_uri) / "scores").glob("*-v*"))


def _scoring_actors(state: ClusterState) -> list[dict]:
    actors = jobs_api(state, "/api/v0/actors?limit=10000&detail=1")["data"]["result"]["result"]
    return [a for a in actors if "MapWorker" in a["class_name"] and a["state"] == "ALIVE"]
