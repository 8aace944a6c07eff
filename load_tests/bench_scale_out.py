"""Training and batch scoring on the multi-node cluster (``churn cluster up``: a head without CPUs
and two worker nodes of 1 CPU, each a network-namespace host) against one local Ray node with the
same 2 CPUs, on the same snapshot, in one run.

    python -m load_tests.bench_scale_out --customers 1000000      # as root (network namespaces)

On a 2-core machine this shows what the node boundary costs (blocks crossing hosts over the
bridge, a Train worker on each node, the driver's node holding the shards, two object stores
instead of one), not a speed-up. The steps are the platform's own: ``churn train`` and ``churn
score`` on the single node, the same modules submitted with ``ray job submit`` to the cluster.
Each is timed inside (training: its MLflow run; scoring: its summary's seconds), so that neither
side pays a Ray start; the commands' wall clocks are recorded too. The two models' holdout AUCs
and the two score tables are compared. Writes ``load_tests/results/scale_out.json`` (``ratio``:
the cluster's seconds over the single node's, per step).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow

from core.processes import free_port
from core.settings import Settings, settings_env
from load_tests.common import machine, parser, register_champion, run_in_scratch, write_snapshot
from ml.scoring.batch import open_scores
from ray_jobs.supervisors.ray_cluster import LocalCluster
from ray_jobs.supervisors.redis_server import RedisServer

RESULT = Path(__file__).parent / "results" / "scale_out.json"
REPO = Path(__file__).resolve().parents[1]
TRAIN = {"num_boost_round": 200, "early_stopping_rounds": 200, "cv_folds": 1}


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of a command that must succeed."""
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def step_seconds(settings: Settings) -> dict[str, float]:
    """The latest training run's duration and the latest scores' own seconds, with the model's holdout AUC."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    (run,) = mlflow.search_runs(experiment_names=[settings.registry.experiment],
                                filter_string="attributes.run_name = 'train'", max_results=1,
                                order_by=["start_time DESC"], output_format="list")
    return {"train_s": round((run.info.end_time - run.info.start_time) / 1000, 2),
            "score_s": float(open_scores(settings, "latest").summary["seconds"]),
            "holdout_auc": float(run.data.metrics["holdout_roc_auc"])}


def scores(settings: Settings) -> list[dict]:
    return open_scores(settings, "latest").read_table(["customer_id", "probability"]).sort_by("customer_id").to_pylist()


def run(scratch: Path, args) -> dict:
    base = Settings(state_dir=(scratch / "state").absolute(), redis_url=None, mlflow_tracking_uri=None,
                    redis={"port": free_port()}, train=TRAIN,
                    cluster={"prefix": "churnb", "subnet": "10.213.7.0/24"})
    snapshot = write_snapshot(base, args.customers)
    register_champion(base, snapshot)
    churn = str(Path(sys.executable).with_name("churn"))
    env = {**os.environ, **settings_env(base), "CHURN_RAY_NUM_CPUS": "2", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    wall = {"single": {"train_s": timed([churn, "train", "--snapshot", "latest"], env),
                       "score_s": timed([churn, "score", "--force"], env)}}
    single, single_scores = step_seconds(base), scores(base)
    print("single node:", single, flush=True)
    redis_server, cluster = RedisServer(base), LocalCluster(base)
    redis_server.up()
    try:
        state = cluster.up()
        submit = [str(Path(sys.executable).with_name("ray")), "job", "submit", "--working-dir", ".", "--", "python",
                  "-m"]
        client = {**os.environ, **state.client_env}
        wall["cluster"] = {"train_s": timed([*submit, "ray_jobs.train", "--snapshot", "latest"], client),
                           "score_s": timed([*submit, "ray_jobs.batch_score", "--force"], client)}
    finally:
        cluster.down()
        redis_server.down()
    multi = step_seconds(base)
    print("cluster:", multi, flush=True)
    return {
        **machine(), "customers": args.customers, "features": len(snapshot.feature_set), "train": TRAIN,
        "single_node": {"cpus": 2, **single}, "cluster": {"worker_nodes": 2, "cpus_per_worker": 1, **multi},
        "wall_s": {side: {k: round(v, 2) for k, v in w.items()} for side, w in wall.items()},
        "ratio": {"train": round(multi["train_s"] / single["train_s"], 3),
                  "score": round(multi["score_s"] / single["score_s"], 3)},
        "auc_diff": round(abs(multi["holdout_auc"] - single["holdout_auc"]), 6),
        "identical_scores": scores(base) == single_scores,
    }


def main() -> None:
    p = parser(__doc__, RESULT)
    p.add_argument("--customers", type=int, default=1_000_000)
    run_in_scratch(run, p.parse_args())


if __name__ == "__main__":
    main()
