"""The pipeline on a multi-node Ray cluster: a head and two worker nodes, each a network namespace
of its own (``churn cluster up``), every step submitted with ``ray job submit --working-dir .``
from the repository as the README says (in a process of its own, with the exports ``churn
cluster up`` prints: Ray reads the token settings once per process) and followed through the Jobs
API; tuning as a job; the Serve app deployed with ``serve deploy`` to the head's dashboard; a
worker node lost during training, during batch scoring and under serving load."""
from __future__ import annotations

import asyncio
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
import pyarrow.parquet as pq
import pytest
import yaml

from core.processes import free_port
from core.settings import Settings
from features.snapshot import open_snapshot
from ml.scoring.batch import open_scores
from ray_jobs.supervisors.ray_cluster import ClusterState, LocalCluster
from ray_jobs.supervisors.redis_server import RedisServer
from ray_jobs.supervisors.serve_deployment import serve_config

from _load import Load
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


def submit(state: ClusterState, entrypoint: str, env: dict[str, str] | None = None) -> str:
    """``ray job submit --no-wait --working-dir . -- <entrypoint>`` from the repository (``env``: the
    job's own variables); the job's id."""
    job = f"churn-test-{os.getpid()}-{next(_jobs)}"
    runtime_env = ["--runtime-env-json", json.dumps({"env_vars": env})] if env else []
    subprocess.run([str(Path(sys.executable).with_name("ray")), "job", "submit", "--no-wait", "--submission-id", job,
                    *runtime_env, "--working-dir", ".", "--", *entrypoint.split()],
                   cwd=REPO, env={**os.environ, **state.client_env}, check=True, capture_output=True, timeout=120)
    return job


def finished(state: ClusterState, job: str, timeout_s: float = 600) -> str:
    """The final status of ``job`` (Jobs API), once it has one."""
    deadline = time.monotonic() + timeout_s
    while (status := state.get(f"/api/jobs/{job}")["status"]) not in {"SUCCEEDED", "FAILED", "STOPPED"}:
        assert time.monotonic() < deadline, f"{job} still {status} after {timeout_s:.0f} s"
        time.sleep(2)
    return str(status)


def actors_of(state: ClusterState) -> list[dict]:
    """Every actor the head knows, alive or dead, with its node (the state API)."""
    return list(state.get("/api/v0/actors", {"limit": "10000", "detail": "1"})["data"]["result"]["result"])


def wait(state: ClusterState, job: str, timeout_s: float = 600) -> str:
    """The logs of ``job`` once it succeeded (it must)."""
    status = finished(state, job, timeout_s)
    logs = state.get(f"/api/jobs/{job}/logs")["logs"]
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
    actors = actors_of(state)
    executors, trainers = node_of(actors, "RayDPExecutor"), node_of(actors, "RayTrainWorker")
    assert executors and not executors & head
    assert len(trainers) == 2 and not trainers & head, "one Train worker on each worker node"


def test_training_goes_on_from_its_checkpoint_when_a_worker_node_is_lost(cluster, pipeline):
    settings, local, state = cluster
    results = Path(settings.results_uri)
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
    # batches of 10 rows: the 2,000 customers take long enough to lose a node in the middle
    job = submit(state, "python -m ray_jobs.batch_score --snapshot latest --model challenger --force",
                 env={"CHURN_SCORING__BATCH_SIZE": "10"})
    deadline = time.monotonic() + 300
    while not (actors := [a for a in _scoring_actors(state) if a["node_id"]]):
        assert time.monotonic() < deadline, "no scoring actor started"
        time.sleep(0.3)
    victim = {n["node_id"]: n["node_ip"] for n in local.alive_nodes(state)}[actors[0]["node_id"]]
    local.kill_node(state.nodes[state.ips.index(victim)])
    try:
        during = state.get(f"/api/jobs/{job}")["status"]
        status = finished(state, job, timeout_s=deadline + 300 - time.monotonic())
    finally:
        local.restart_node(state.nodes[state.ips.index(victim)])
    assert during == "RUNNING", "the node was lost while the job ran"
    snapshot = open_snapshot(settings, "latest")
    if status == "SUCCEEDED":
        scores = open_scores(settings)
        assert scores.read_table(["customer_id"]).num_rows == snapshot.manifest["rows"]
    else:  # a clean failure: no output published, nothing half-written left in place
        assert not any(p.name.startswith(snapshot.id) for p in (Path(settings.data_uri) / "scores").glob("*-v*"))


def _scoring_actors(state: ClusterState) -> list[dict]:
    return [a for a in actors_of(state) if "MapWorker" in a["class_name"] and a["state"] == "ALIVE"]


def test_tuning_runs_as_a_job_and_registers_its_best_trial(cluster, pipeline):
    """Before the Serve tests: their replicas hold the worker nodes' CPUs, which the trials need."""
    settings, _, state = cluster
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = mlflow.MlflowClient()
    before = int(client.get_model_version_by_alias(settings.registry.model_name, "challenger").version)
    wait(state, submit(state, "python -m ray_jobs.tune --trials 2"))
    best = client.get_model_version_by_alias(settings.registry.model_name, "challenger")
    assert int(best.version) > before and mlflow.get_run(best.run_id).info.run_name == "tune-best"

# --------------------------------------------------------------------- the Serve app on the cluster
@pytest.fixture(scope="module")
def service(cluster, pipeline) -> str:
    """The champion promoted and its features materialised (jobs), then the app deployed with
    ``serve deploy`` to the head's dashboard, proxies on every node; the head's route once ready."""
    settings, _, state = cluster
    for step in ("promote", "materialize"):
        wait(state, submit(state, f"python -m ray_jobs.{step}"))
    config = serve_config(settings.model_copy(update={"serve": settings.serve.model_copy(update={"host": "0.0.0.0"})}))
    path = settings.state_dir / "serve-cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run([str(Path(sys.executable).with_name("serve")), "deploy", "--address", state.dashboard, str(path)],
                   env={**os.environ, **state.client_env}, check=True, capture_output=True, timeout=120)
    route = f"http://{state.ips[0]}:{settings.serve.port}"
    deadline = time.monotonic() + 300
    while _status(f"{route}/readyz") != 200:
        assert time.monotonic() < deadline, f"{route}/readyz not ready"
        time.sleep(2)
    return route


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _replica_nodes(state: ClusterState) -> list[str]:
    return [a["node_id"] for a in actors_of(state)
            if "ServeReplica:churn:Predictor" in a["class_name"] and a["state"] == "ALIVE"]


def _controller(state: ClusterState) -> str:
    (controller,) = [a["actor_id"] for a in actors_of(state)
                     if a["class_name"] == "ServeController" and a["state"] == "ALIVE"]
    return str(controller)


def test_the_serve_replicas_run_on_both_worker_nodes(cluster, service):
    _, local, state = cluster
    workers = {n["node_id"] for n in local.alive_nodes(state) if not n["is_head_node"]}
    assert set(_replica_nodes(state)) == workers and len(workers) == 2


def test_a_worker_node_lost_under_serving_load_fails_no_request(cluster, service):
    """Kill the node of one replica while 8 clients predict through the head's proxy: HAProxy
    replays what the lost replica held, Serve starts its replacement on the surviving node, and
    the controller (on the head) is the same actor with the same application throughout."""
    settings, local, state = cluster
    ids = pq.read_table(open_snapshot(settings, "latest").data_uri, columns=["customer_id"]).column(0).to_pylist()
    controller = _controller(state)
    ips = {n["node_id"]: n["node_ip"] for n in local.alive_nodes(state)}
    victim = state.nodes[state.ips.index(ips[_replica_nodes(state)[0]])]
    survivor = next(i for i, ip in ips.items() if ip not in (state.ips[0], state.ips[state.nodes.index(victim)]))
    load = Load(service, ids[:2000])

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(load.run(stop))
        await asyncio.sleep(3)
        await asyncio.to_thread(local.kill_node, victim)
        deadline = time.monotonic() + 180
        while _replica_nodes(state) != [survivor] * 2:
            assert time.monotonic() < deadline, f"replicas on {_replica_nodes(state)}"
            await asyncio.sleep(1)
        await asyncio.sleep(3)  # the replacement serving too
        stop.set()
        await task

    try:
        asyncio.run(scenario())
    finally:
        local.restart_node(victim)
    assert len(load.statuses) > 200
    assert set(load.statuses) == {200}, (load.counts, load.failures[:5])
    assert _controller(state) == controller
    apps = state.get("/api/serve/applications/")["applications"]
    assert apps["churn"]["status"] == "RUNNING"
