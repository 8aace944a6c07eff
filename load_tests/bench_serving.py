"""Serving benchmark: the prediction service under open-loop load, against the same handler
logic in a bare uvicorn process, in one run on one machine.

    python -m load_tests.bench_serving [--customers 1000000] [--duration 20]

Sets up a project redis-server with ``--customers`` synthetic customers (the platform's real
FeatureSet) materialised through Ray Data, a 200-tree champion in a fresh MLflow registry, then:

* Serve: ``churn serve``'s deployment (throughput-optimised Serve, HAProxy route) on a Ray head of
  its own; ``--replicas`` and ``--batch-sizes`` (``@serve.batch``'s max size; 1 = no batching)
  may list several values: every combination is measured, keyed ``"<replicas>x<batch size>"``.
* Baseline: ``uvicorn serve_app.baseline:create`` (same API, service and model; no Ray, no
  batching) with ``--baseline-workers`` processes, after the Ray head is stopped.

Each target is driven by wrk (``load_tests/open_loop.lua``: requests due on a fixed schedule,
random ids) at increasing offered rates until the p99 bound breaks; every point records p50,
p90, p95, p99, p99.9 and max latency, throughput, errors and late sends. Then 100-id batches at
50 requests/s. Results: ``load_tests/results/serving.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from core.processes import free_port
from core.ray_session import ray_session
from core.settings import Settings, settings_env
from features.online import materialize
from load_tests import common
from ray_jobs.supervisors import serve_deployment
from ray_jobs.supervisors.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "serving.json"
LUA = HERE / "open_loop.lua"
P99_BOUND_MS = 25.0
TARGETS = {"at_500": {"p50_ms": 1.0, "p99_ms": 5.0}, "max_rate_min": 2500, "ratio_min": 0.7,
           "batch_100_at_50_p99_ms": 10.0}


def wrk(url: str, rate: float, duration: float, ids: Path, batch: int = 0, connections: int = 256) -> dict:
    """One open-loop run; the Lua script's RESULT line plus the derived throughput."""
    env = {**os.environ, "RATE": str(rate), "THREADS": "1", "IDS": str(ids), "BATCH": str(batch)}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "10s", "-s", str(LUA), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((row for row in out.stdout.splitlines() if row.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed (exit {out.returncode}): {out.stdout[-2000:]}{out.stderr[-2000:]}")
    point = json.loads(line[len("RESULT "):])
    point.update(offered_rps=rate, throughput_rps=round(point["requests"] / point["duration_s"], 1),
                 error_count=sum(point["errors"].values()))
    # Delivered: the offered rate was really offered. A saturated target leaves every connection
    # busy and thousands of sends late; a few late sends are the load generator's own hiccups on a
    # machine it shares with the target.
    point["delivered"] = (point["late_over_10ms"] <= 0.01 * point["sent"]
                          and point["throughput_rps"] >= 0.97 * rate)
    return point


def within_bound(point: dict, p99_ms: float = P99_BOUND_MS) -> bool:
    return point["delivered"] and point["error_count"] == 0 and point["p99_ms"] <= p99_ms


def sweep(url: str, rates: list[int], duration: float, ids: Path) -> list[dict]:
    """Offered rates in turn (each after a short warm-up at that rate) until one breaks the bound."""
    points = []
    for rate in rates:
        wrk(url, rate, 3, ids)
        point = wrk(url, rate, duration, ids)
        points.append(point)
        print(f"  {rate:>5} req/s: p50 {point['p50_ms']:.2f}  p99 {point['p99_ms']:.2f}  max {point['max_ms']:.1f} ms"
              f"  {point['throughput_rps']:.0f} req/s  errors {point['error_count']}  late {point['late_over_10ms']}",
              flush=True)
        if not within_bound(point):
            break
    return points


def measure(url: str, args: argparse.Namespace, ids: Path) -> dict:
    """The target's numbers: 500 req/s, the rate sweep, batches of 100 at 50 req/s (after a
    warm-up: connection pools, first model calls)."""
    wrk(url, 500, 5, ids)
    at_500 = wrk(url, 500, args.duration, ids)
    points = sweep(url, args.rates, args.duration, ids)
    passing = [p["offered_rps"] for p in (at_500, *points) if within_bound(p)]
    batch = wrk(url, 50, args.duration, ids, batch=100, connections=32)
    return {"at_500": at_500, "sweep": points, "max_rate_p99_within_25ms": max(passing, default=0),
            "batch_100_at_50": batch}


@contextlib.contextmanager
def serve_target(settings: Settings, replicas: int, batch_size: int) -> Iterator[str]:
    settings = settings.model_copy(update={"serve": settings.serve.model_copy(update={"max_batch_size": batch_size})})
    config = serve_deployment.serve_config(settings)
    config["applications"][0]["deployments"][0]["num_replicas"] = replicas
    try:
        serve_deployment.deploy(settings, config)
        serve_deployment.wait_ready(settings)
        yield serve_deployment.route(settings)
    finally:
        serve_deployment.shutdown(settings)


@contextlib.contextmanager
def baseline_target(settings: Settings, workers: int) -> Iterator[str]:
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("uvicorn")), "serve_app.baseline:create", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
           "--log-level", "warning"]
    with open(Path(settings.state_dir) / "baseline.log", "w") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, **settings_env(settings)}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while not _ready(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"baseline did not start; see {log.name}")
                time.sleep(1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def setup(settings: Settings, customers: int, scratch: Path) -> dict:
    """Redis with the customers materialised, the champion registered, the ids file written."""
    snapshot = common.write_snapshot(settings, customers)
    with ray_session(settings):
        loaded = materialize.materialize(settings, snapshot.id)
    version = common.register_champion(settings, snapshot)
    ids = snapshot.to_pandas()["customer_id"]
    (scratch / "ids.txt").write_text("\n".join(ids) + "\n")
    return {"customers": customers, "features": len(snapshot.feature_set), "trees": 200, "max_depth": 5,
            "model_version": version, "materialize_s": round(loaded.seconds, 2)}


def summarise(serve: dict, baseline: dict) -> dict:
    """The numbers of the Serve configuration with the highest rate within the bound."""
    config = max(serve, key=lambda k: serve[k]["max_rate_p99_within_25ms"])
    chosen = serve[config]
    at_500, batch = chosen["at_500"], chosen["batch_100_at_50"]
    best, base_best = chosen["max_rate_p99_within_25ms"], baseline["max_rate_p99_within_25ms"]
    ratio = round(best / base_best, 2) if base_best else None
    return {
        "config": config,
        "at_500": {"p50_ms": at_500["p50_ms"], "p99_ms": at_500["p99_ms"], "errors": at_500["error_count"]},
        "max_rate_p99_within_25ms": best,
        "baseline_max_rate_p99_within_25ms": base_best,
        "ratio_to_baseline": ratio,
        "batch_100_at_50_p99_ms": batch["p99_ms"],
        "targets_met": {
            "at_500": at_500["p50_ms"] <= 1.0 and at_500["p99_ms"] <= 5.0 and at_500["error_count"] == 0,
            "max_rate": best >= TARGETS["max_rate_min"],
            "ratio": ratio is not None and ratio >= TARGETS["ratio_min"],
            "batch": batch["p99_ms"] <= TARGETS["batch_100_at_50_p99_ms"] and batch["error_count"] == 0,
        },
    }


def main() -> None:
    parser = common.parser(__doc__, RESULT)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds per measured point.")
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000, 3500, 4000, 5000])
    parser.add_argument("--replicas", type=lambda s: [int(x) for x in s.split(",")], default=[2])
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[64])
    parser.add_argument("--baseline-workers", type=int, default=1)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below when stopped
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-", dir=args.out))
    settings = Settings(state_dir=scratch, redis_url=None, mlflow_tracking_uri=None,
                        redis={"port": free_port(), "password": "bench"},
                        serve={"port": free_port()})
    redis_server = RedisServer(settings)
    redis_server.up()
    report: dict = {"machine": common.machine(), "load_generator": "wrk 4.1 + load_tests/open_loop.lua (open loop)"}
    try:
        report["setup"] = setup(settings, args.customers, scratch)
        ids = scratch / "ids.txt"
        serve: dict = {}
        for replicas, batch_size in itertools.product(args.replicas, args.batch_sizes):
            print(f"serve, {replicas} replica(s), batches of up to {batch_size}:", flush=True)
            with serve_target(settings, replicas, batch_size) as url:
                serve[f"{replicas}x{batch_size}"] = measure(url, args, ids)
        print(f"baseline, {args.baseline_workers} uvicorn worker(s):", flush=True)
        with baseline_target(settings, args.baseline_workers) as url:
            baseline = measure(url, args, ids)
        report.update(serve=serve, baseline={**baseline, "workers": args.baseline_workers},
                      summary=summarise(serve, baseline),
                      targets=TARGETS)
        report["machine"]["load_avg_1m_after"] = os.getloadavg()[0]
    finally:
        redis_server.down()
        shutil.rmtree(scratch, ignore_errors=True)
    common.save(report, args.result)
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
