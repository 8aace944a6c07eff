"""Where a prediction's CPU goes: CPU time per request of every process on the machine, grouped
by role (replica, HAProxy, Ray's agents, Redis, the load generator...), at one fixed offered rate.

    python -m load_tests.profile_serving --target serve --rate 1500 [--py-spy /tmp/replica.txt]
    python -m load_tests.profile_serving --target bare --rate 1500

``bench_serving`` finds the highest rate within the latency bound; this says what each request
costs on the way, which is what decides that rate on a 2-core machine. It reuses the benchmark's
set-up (``--customers`` materialised in a project redis-server, a 200-tree champion) and targets:
``serve`` is ``churn serve``'s deployment with one replica (batches of up to ``--batch-size``),
``bare`` the uvicorn baseline. After a warm-up, wrk (open loop) drives the target for
``--duration`` seconds while the CPU time (user + system, from /proc) of every process is taken
before and after. With ``--py-spy``, py-spy (if installed) records the app process meanwhile, as
collapsed stacks. Results: ``load_tests/results/serving_profile_<target>.json``.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from core.processes import free_port
from core.settings import Settings
from load_tests import bench_serving, common
from ray_jobs.supervisors.redis_server import RedisServer

ROLES = (  # first match wins
    ("replica", re.compile(r"ServeReplica")),
    ("bare app", re.compile(r"uvicorn.*serve_app\.baseline")),
    ("haproxy", re.compile(r"haproxy")),
    ("serve controller", re.compile(r"ServeController")),
    ("serve proxy actors", re.compile(r"ProxyActor|HAProxyManager")),
    ("ray metrics agent", re.compile(r"DashboardAgent|dashboard/agent\.py")),
    ("raylet", re.compile(r"raylet/raylet")),
    ("gcs", re.compile(r"gcs_server")),
    ("redis", re.compile(r"redis-server")),
    ("profiler", re.compile(r"py-spy")),
    ("kernel softirq (loopback TCP)", re.compile(r"^\[ksoftirqd")),
    ("kernel, other threads", re.compile(r"^\[")),
)
APP_ROLE = {"serve": "replica", "bare": "bare app"}


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """(command line, or ``[name]`` for a kernel thread; user + system CPU seconds) of every
    process."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        name = cmdline or f"[{stat[stat.index('(') + 1:stat.rindex(')')]}]"
        found[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return found


def role(cmdline: str) -> str:
    return next((name for name, pattern in ROLES if pattern.search(cmdline)), "other")


def per_request_us(before: dict, after: dict, requests: int) -> dict[str, float]:
    """Microseconds of CPU per request by role, largest first (a process started meanwhile
    counts from zero)."""
    totals: dict[str, float] = defaultdict(float)
    for pid, (cmdline, seconds) in after.items():
        totals[role(cmdline)] += seconds - before.get(pid, (cmdline, 0.0))[1]
    return {name: round(s / requests * 1e6, 1) for name, s in sorted(totals.items(), key=lambda kv: -kv[1])}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def app_pid(target: str) -> int:
    """The newest process in the target's app role (what py-spy records)."""
    pids = [pid for pid, (name, _) in cpu_seconds().items() if role(name) == APP_ROLE[target]]
    if not pids:
        raise RuntimeError(f"no {target} app process found")
    return max(pids)


def profile(url: str, target: str, args: argparse.Namespace, ids: Path) -> dict:
    bench_serving.wrk(url, args.rate, 5, ids)
    spy = None
    if args.py_spy and shutil.which("py-spy"):
        spy = subprocess.Popen(["py-spy", "record", "-p", str(app_pid(target)), "-d", str(int(args.duration)),
                                "-r", "200", "-f", "raw", "-o", args.py_spy, "--nonblocking"])
    before, children = cpu_seconds(), _children_cpu()
    point = bench_serving.wrk(url, args.rate, args.duration, ids)
    after, wrk_s = cpu_seconds(), _children_cpu() - children  # wrk has exited: its CPU is a child's
    if spy:
        spy.wait()
    cpu = per_request_us(before, after, point["requests"])
    cpu["load generator (wrk)"] = round(wrk_s / point["requests"] * 1e6, 1)
    return {"target": target, "offered_rps": args.rate, "point": point, "cpu_us_per_request": cpu,
            "total_cpu_us_per_request": round(sum(v for k, v in cpu.items() if k != "profiler"), 1),
            "py_spy": args.py_spy if spy else None}


def run(scratch: Path, args: argparse.Namespace) -> dict:
    settings = Settings(state_dir=scratch, redis_url=None, mlflow_tracking_uri=None,
                        redis={"port": free_port(), "password": "bench"},
                        serve={"port": free_port()})
    redis_server = RedisServer(settings)
    redis_server.up()
    try:
        setup = bench_serving.setup(settings, args.customers, scratch)
        target = (bench_serving.serve_target(settings, 1, args.batch_size) if args.target == "serve"
                  else bench_serving.baseline_target(settings, 1))
        with target as url:
            result = profile(url, args.target, args, scratch / "ids.txt")
    finally:
        redis_server.down()
    return {"machine": common.machine(), "setup": setup, **result}


def main() -> None:
    parser = common.parser(__doc__, None)
    parser.add_argument("--target", choices=sorted(APP_ROLE), default="serve")
    parser.add_argument("--rate", type=int, default=1500)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--py-spy", help="Write py-spy's collapsed stacks of the app process here.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    if args.result is None:
        args.result = bench_serving.RESULT.with_name(f"serving_profile_{args.target}.json")
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        report = run(Path(scratch), args)
    common.save(report, args.result)
    print({k: report[k] for k in ("target", "offered_rps", "cpu_us_per_request", "total_cpu_us_per_request")})


if __name__ == "__main__":
    main()
