"""Availability benchmark: the prediction route at a steady rate while the feature Redis's primary
is SIGKILLed on a schedule, with automatic failover (Sentinel) against one Redis restarted at once.

    python -m load_tests.bench_availability [--customers 100000] [--rate 500] [--minutes 10] [--every 60]

Sets up the HA Redis (``churn services up --ha``: primary, two replicas, three Sentinels) with
``--customers`` synthetic customers materialised, a champion, and ``churn serve``'s deployment. Then:

* HA (our path): ``--minutes`` of open-loop requests (due on a fixed schedule, random ids) at
  ``--rate``; every ``--every`` seconds the current primary is SIGKILLed, and restarted once a
  replica is promoted (it rejoins as a replica).
* Baseline: the same store as one redis-server (the former primary's AOF), the service redeployed
  on it, ``--baseline-failures`` kills each followed by an immediate restart (what a process
  supervisor does), at the same rate.

Per mode: the share of successful answers, statuses, seconds of unavailability per failure (first
to last failed request after it), seconds until writes are accepted again, p50/p99 outside and
within ``WINDOW_S`` of a failure, and what 99.9% a month allows. Results:
``load_tests/results/availability.json`` and ``availability.png``.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis
from matplotlib.figure import Figure

from core.processes import free_port
from core.ray_session import ray_session
from core.settings import Settings
from features.online import materialize
from features.online.redis_layout import redis_client
from load_tests import common
from load_tests.http_load import Requests, open_loop
from ray_jobs.supervisors import serve_deployment
from ray_jobs.supervisors.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "availability.json"
WINDOW_S = 10.0  # "during a failure": this long after each kill
MONTH_S = 30.44 * 24 * 3600
BUDGET_S = MONTH_S * 0.001  # 99.9%: 43.8 minutes a month


@dataclass
class Run(Requests):
    """The requests of one soak, with when the failures were injected and how long writes were refused."""

    kills: list[float] = field(default_factory=list)
    writes_back_s: list[float] = field(default_factory=list)


def _writes_back(settings: Settings, since: float) -> float:
    """Seconds from ``since`` until a write through the Sentinels' primary (or the one server) succeeds."""
    while True:
        try:
            redis_client(settings, timeout_s=1.0).set("bench:availability-probe", "1")
            return time.monotonic() - since
        except redis.RedisError:
            time.sleep(0.05)


def _fail_on_schedule(server: RedisServer, settings: Settings, run: Run, t0: float, times: list[float],
                      ha: bool) -> None:
    """At each of ``times``: SIGKILL the primary, time the return of writes, bring the process back."""
    for at in times:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        primary = server.current_primary() if ha else (server.cfg.host, server.cfg.port)
        name = next(i.name for i in [server.primary, *server.replicas] if (i.host, i.port) == primary)
        killed = time.monotonic()
        server.process(name).signal(signal.SIGKILL)
        run.kills.append(killed - t0)
        if ha:
            run.writes_back_s.append(_writes_back(settings, killed))
            server.up(ha=True)  # the killed one rejoins as a replica
        else:
            while server.running_pid() is not None:
                time.sleep(0.01)
            server.up()
            run.writes_back_s.append(_writes_back(settings, killed))
        print(f"  failure at {killed - t0:.0f} s: writes back after {run.writes_back_s[-1]:.2f} s", flush=True)


def soak(server: RedisServer, settings: Settings, ids: list[str], rate: float, seconds: float,
         failures_at: list[float], ha: bool) -> Run:
    run = Run()
    t0 = time.monotonic() + 1.0
    failing = threading.Thread(target=_fail_on_schedule, args=(server, settings, run, t0, failures_at, ha))
    failing.start()
    asyncio.run(open_loop(serve_deployment.route(settings), ids, rate, seconds, t0, run))
    failing.join()
    return run


def summarise(run: Run, rate: float) -> dict:
    sent, status = np.array(run.sent), np.array(run.status)
    ok = status == 200
    near = np.zeros(len(sent), dtype=bool)
    unavailable = []
    for kill in run.kills:
        window = (sent >= kill) & (sent < kill + WINDOW_S)
        near |= window
        failed = sent[window & ~ok]
        unavailable.append(round(float(failed.max() - failed.min() + 1 / rate), 3) if len(failed) else 0.0)
    per_failure = float(np.mean(unavailable)) if unavailable else 0.0

    return {
        "requests": len(status),
        "load_generator_lag_p99_s": run.lag_p99_s,
        "successful_share": round(float(ok.mean()), 6),
        "statuses": {str(s): int((status == s).sum()) for s in np.unique(status)},
        "failures": len(run.kills),
        "unavailable_s_per_failure": unavailable,
        "writes_back_s_per_failure": [round(s, 2) for s in run.writes_back_s],
        "p50_ms_outside": run.percentile_ms(50, ~near), "p99_ms_outside": run.percentile_ms(99, ~near),
        "p50_ms_during": run.percentile_ms(50, near), "p99_ms_during": run.percentile_ms(99, near),
        "failures_a_month_within_99_9": (round(BUDGET_S / per_failure) if per_failure else None),
    }


def plot(runs: dict[str, Run], path: Path) -> None:
    fig = Figure(figsize=(11, 3.2 * len(runs)))
    axes = fig.subplots(len(runs), 1, squeeze=False)
    for ax, (name, run) in zip(axes[:, 0], runs.items()):
        sent, status, latency = np.array(run.sent), np.array(run.status), np.array(run.latency_ms)
        ax.scatter(sent[status == 200], latency[status == 200], s=1, alpha=0.3, label="200")
        ax.scatter(sent[status != 200], np.full((status != 200).sum(), 1.0), s=6, c="red", label="not 200")
        for kill in run.kills:
            ax.axvline(kill, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("latency ms")
        ax.set_title(f"{name}: primary SIGKILLed at the dashed lines")
        ax.legend(loc="upper right")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = common.parser(__doc__, RESULT)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=60.0, help="Seconds between failures.")
    parser.add_argument("--baseline-failures", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below when stopped
    scratch = Path(tempfile.mkdtemp(prefix="bench-availability-", dir=args.out))
    settings = Settings(state_dir=scratch, redis_url=None, mlflow_tracking_uri=None,
                        redis={"port": free_port(), "sentinel_port": free_port()}, serve={"port": free_port()})
    server = RedisServer(settings)
    report: dict = {"machine": common.machine(), "load_generator": "aiohttp, open loop, one process"}
    runs: dict[str, Run] = {}
    try:
        server.up(ha=True)
        snapshot = common.write_snapshot(settings, args.customers)
        with ray_session(settings):
            materialize.materialize(settings, snapshot.id)
        common.register_champion(settings, snapshot)
        ids = snapshot.to_pandas()["customer_id"].tolist()
        seconds = args.minutes * 60
        schedule = [float(t) for t in np.arange(args.every / 2, seconds - 5, args.every)]
        print(f"HA: {seconds:.0f} s at {args.rate:g} req/s, failures at {schedule}", flush=True)
        with common.deployed(settings):
            runs["sentinel_failover"] = soak(server, settings, ids, args.rate, seconds, schedule, ha=True)
        server.down()
        server.up(ha=False)
        base_schedule = [float(t) for t in np.arange(1, args.baseline_failures + 1) * args.every / 2]
        print(f"baseline: one Redis, failures at {base_schedule}", flush=True)
        with common.deployed(settings):
            runs["one_redis_restarted"] = soak(server, settings, ids, args.rate,
                                               base_schedule[-1] + args.every / 2, base_schedule, ha=False)
    finally:
        server.down()
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {name: summarise(run, args.rate) for name, run in runs.items()}
    ours, base = (summary["sentinel_failover"]["unavailable_s_per_failure"],
                  summary["one_redis_restarted"]["unavailable_s_per_failure"])
    report.update(customers=args.customers, rate=args.rate, minutes=args.minutes, every_s=args.every,
                  down_after_ms=settings.redis.down_after_ms, window_s=WINDOW_S,
                  budget_99_9_s_a_month=round(BUDGET_S), modes=summary,
                  unavailability_ratio_ha_to_baseline=(round(np.mean(ours) / np.mean(base), 3)
                                                       if np.mean(base) else None))
    report["machine"]["load_avg_1m_after"] = os.getloadavg()[0]
    common.save(report, args.result)
    plot(runs, args.result.with_suffix(".png"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
