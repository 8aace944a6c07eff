"""The pipeline's steps with the data root on S3 (the project's SeaweedFS, on loopback) against the
same steps on local disk, in one run.

    python -m load_tests.bench_s3 --customers 100000

Each step is the ``churn`` command a user runs (a process of its own, with its own local Ray),
generate -> etl -> train -> score, the disk run and the S3 run alternating step by step so that
both see the same machine load. On S3 every dataset, the MLflow artifacts and Ray Train's
checkpoints go to the bucket; the ETL's Spark reads a local copy of the raw data and uploads its
snapshot (no s3a here: ``features.spark_session``). Timed: each command's wall clock, Ray's start
included in both. The snapshots and the scores are compared. Writes
``load_tests/results/s3_vs_disk.json`` (``ratio``: S3 seconds over disk seconds, per step and in all).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from core import storage
from core.object_store import s3_env
from core.processes import free_port
from core.settings import Settings
from features.snapshot import open_snapshot
from load_tests.common import machine, parser, run_in_scratch
from ml.scoring.batch import open_scores
from ray_jobs.supervisors.s3_server import S3Server

RESULT = Path(__file__).parent / "results" / "s3_vs_disk.json"
STEPS = (("generate",), ("etl",), ("train",), ("promote",), ("score",))


def churn(env: dict[str, str], step: tuple[str, ...]) -> float:
    """Run ``churn <step>``; its wall-clock seconds."""
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("churn")), *step], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"churn {' '.join(step)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def run(scratch: Path, args) -> dict:
    base = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "CHURN_GENERATE__CUSTOMERS": str(args.customers),
            "CHURN_GENERATE__DAYS": str(args.days), "CHURN_TRAIN__CV_FOLDS": "1"}
    s3_state = scratch / "s3-run"
    server = S3Server(Settings(state_dir=s3_state, redis_url=None, mlflow_tracking_uri=None,
                               s3={"port": args.s3_port}))
    server.up()
    envs = {"disk": {**base, "CHURN_STATE_DIR": str(scratch / "disk-run"), "CHURN_REDIS__PORT": str(free_port())},
            "s3": {**base, "CHURN_STATE_DIR": str(s3_state), "CHURN_S3__PORT": str(args.s3_port),
                   "CHURN_DATA_ROOT": f"s3://{server.cfg.bucket}/data", "CHURN_REDIS__PORT": str(free_port())}}
    seconds: dict[str, dict[str, float]] = {"disk": {}, "s3": {}}
    try:
        for step in STEPS:
            for where, env in envs.items():
                seconds[where][step[0]] = round(churn(env, step), 2)
                print(f"{step[0]:>9} on {where:>4}: {seconds[where][step[0]]:7.1f} s", flush=True)
        os.environ.update(s3_env(server.settings))
        outcome = {where: _outcome(Settings(state_dir=Path(env["CHURN_STATE_DIR"]),
                                            data_root=env.get("CHURN_DATA_ROOT"), redis_url=None,
                                            mlflow_tracking_uri=None)) for where, env in envs.items()}
        bucket_bytes = storage.total_bytes(envs["s3"]["CHURN_DATA_ROOT"])
    finally:
        server.down()
    timed = [s[0] for s in STEPS if s[0] != "promote"]
    return {
        **machine(), "customers": args.customers, "days": args.days,
        "s3_server": "SeaweedFS 4.48 (weed mini), loopback",
        "seconds": seconds,
        "ratio_by_step": {s: round(seconds["s3"][s] / seconds["disk"][s], 3) for s in timed},
        "ratio": round(sum(seconds["s3"][s] for s in timed) / sum(seconds["disk"][s] for s in timed), 3),
        "bucket_bytes": bucket_bytes,
        "same_snapshot": outcome["s3"]["snapshot"] == outcome["disk"]["snapshot"],
        "identical_scores": outcome["s3"]["scores"] == outcome["disk"]["scores"],
    }


def _outcome(settings: Settings) -> dict:
    """The snapshot's id and the scores (customer, probability) of a run."""
    table = open_scores(settings, "latest").read_table(["customer_id", "probability"]).sort_by("customer_id")
    return {"snapshot": open_snapshot(settings, "latest").id, "scores": table.to_pylist()}


def main() -> None:
    p = parser(__doc__, RESULT)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--s3-port", type=int, default=18_333)
    run_in_scratch(run, p.parse_args())


if __name__ == "__main__":
    main()
