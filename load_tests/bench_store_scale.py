"""Online-store scale benchmark: 10 million customers in Redis against 1 million, in one run.

    python -m load_tests.bench_store_scale [--customers 10000000] [--reference 1000000] [--rate 500]

Sets up a project redis-server (AOF on) and a champion, then for the reference size and for
``--customers`` in turn: a synthetic snapshot of the platform's 59 features (generated directly:
the raw-data generator would take hours at 10M here), materialised through Ray Data (time until
live; Redis memory before and after), then the route (``churn serve``'s deployment) at ``--rate``
requests/s, open loop, for ``--seconds`` over random ids of that size: p50, p99, errors.
One Ray cluster at a time: the load's own, then the service's. The larger load keeps the
reference as the previous version, as a real reload does; its memory is measured as the growth.

Results: ``load_tests/results/store_scale.json``.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from core.processes import free_port
from core.ray_session import ray_session
from core.settings import Settings
from features.online import materialize
from features.online.redis_layout import redis_client
from load_tests import common
from load_tests.http_load import Requests, open_loop
from ray_jobs.supervisors import serve_deployment
from ray_jobs.supervisors.redis_server import RedisServer

RESULT = Path(__file__).resolve().parent / "results" / "store_scale.json"
GOAL_US_PER_CUSTOMER = 5.0


def used_memory(settings: Settings) -> int:
    return int(redis_client(settings).info("memory")["used_memory"])


def load_size(settings: Settings, customers: int, rate: float, seconds: float) -> dict:
    """Materialise ``customers`` and measure the route over them."""
    started = time.monotonic()
    snapshot = common.write_snapshot(settings, customers, files=max(8, customers // 250_000))
    generated_s = time.monotonic() - started
    before = used_memory(settings)
    with ray_session(settings):
        loaded = materialize.materialize(settings, snapshot.id)
    grown = used_memory(settings) - before
    print(f"  {customers:,}: live after {loaded.seconds:.1f} s, Redis +{grown / 2**30:.2f} GiB", flush=True)
    ids = common.customer_ids(customers).tolist()
    requests = Requests()
    with common.deployed(settings):
        asyncio.run(open_loop(serve_deployment.route(settings), ids, rate, seconds, time.monotonic() + 1, requests))
    statuses = {str(s): requests.status.count(s) for s in set(requests.status)}
    return {
        "customers": customers, "snapshot_generated_s": round(generated_s, 1),
        "materialize_s": round(loaded.seconds, 2),
        "us_per_customer": round(loaded.seconds / customers * 1e6, 2),
        "redis_bytes_grown": grown, "bytes_per_customer": round(grown / customers, 1),
        "route": {"rate": rate, "seconds": seconds, "requests": len(requests.status), "statuses": statuses,
                  "load_generator_lag_p99_s": requests.lag_p99_s,
                  "p50_ms": requests.percentile_ms(50), "p99_ms": requests.percentile_ms(99)},
    }


def main() -> None:
    parser = common.parser(__doc__, RESULT)
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--reference", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below when stopped
    scratch = Path(tempfile.mkdtemp(prefix="bench-store-scale-", dir=args.out))
    settings = Settings(state_dir=scratch, redis_url=None, mlflow_tracking_uri=None,
                        redis={"port": free_port()}, serve={"port": free_port()})
    server = RedisServer(settings)
    report: dict = {"machine": common.machine()}
    try:
        server.up()
        common.register_champion(settings, common.write_snapshot(settings, 100_000, seed=1))
        sizes = {str(n): load_size(settings, n, args.rate, args.seconds) for n in (args.reference, args.customers)}
    finally:
        server.down()
        shutil.rmtree(scratch, ignore_errors=True)
    big, ref = sizes[str(args.customers)], sizes[str(args.reference)]
    report.update(sizes=sizes, goal_us_per_customer=GOAL_US_PER_CUSTOMER,
                  time_ratio_per_customer=round(big["us_per_customer"] / ref["us_per_customer"], 2),
                  p99_ratio=(round(big["route"]["p99_ms"] / ref["route"]["p99_ms"], 2)
                             if big["route"]["p99_ms"] and ref["route"]["p99_ms"] else None),
                  goal_met=big["us_per_customer"] <= GOAL_US_PER_CUSTOMER)
    report["machine"]["load_avg_1m_after"] = os.getloadavg()[0]
    common.save(report, args.result)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
