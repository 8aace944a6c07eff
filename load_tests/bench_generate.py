"""Generator throughput: the Ray path (a task per customer shard) against a single-process
baseline (the same shard function called in turn, no Ray), on the same sizes and seed.

    python -m load_tests.bench_generate --customers 100000 --days 90

Writes ``load_tests/results/generate.json`` (``ratio``: Ray's throughput over the baseline's).
Ray's start-up is not timed; both runs include writing every file, the truth and the manifest.
The load average is recorded too: on shared machines other work skews the numbers.
Peak RSS of this process is taken after the in-process run, which holds one shard at a time:
the memory bound of a worker.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
from pathlib import Path

import ray

from core.ray_session import ray_session
from core.settings import get_settings
from load_tests import common
from simulator import GenerationResult, generate

RESULT = Path(__file__).parent / "results" / "generate.json"


def main() -> None:
    defaults = get_settings().generate
    parser = common.parser(__doc__, RESULT)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--shard-size", type=int, default=defaults.shard_size)
    parser.add_argument("--defect-rate", type=float, default=defaults.defect_rate)
    args = parser.parse_args()
    common.run_in_scratch(run, args)


def run(scratch: Path, args: argparse.Namespace) -> dict:
    sizes = {
        "customers": args.customers, "days": args.days, "seed": args.seed,
        "start_date": get_settings().generate.start_date,
        "defect_rate": args.defect_rate, "shard_size": args.shard_size,
    }
    load_before = os.getloadavg()[0]
    with ray_session(get_settings()):
        cpus = ray.cluster_resources().get("CPU")
        on_ray = generate(str(scratch / "ray"), **sizes)
    in_process = generate(str(scratch / "in_process"), **sizes, use_ray=False)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sources = on_ray.manifest["sources"].values()
    return {
        **{k: v for k, v in sizes.items() if k != "start_date"},
        "shards": on_ray.manifest["shards"],
        "rows": sum(s["rows"] for s in sources),
        "bytes": sum(s["bytes"] for s in sources),
        "files": sum(s["files"] for s in sources),
        "ray": {**_throughput(on_ray), "cpus": cpus},
        "in_process": {**_throughput(in_process), "peak_rss_mb": round(peak_rss_mb)},
        "ratio": round(in_process.seconds / on_ray.seconds, 2),
        "identical_output": _digest(scratch / "ray") == _digest(scratch / "in_process"),
        "machine": {**common.machine(), "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]},
    }


def _throughput(result: GenerationResult) -> dict:
    rows = sum(s["rows"] for s in result.manifest["sources"].values())
    return {
        "seconds": round(result.seconds, 1),
        "customers_per_s": round(result.manifest["customers"] / result.seconds),
        "rows_per_s": round(rows / result.seconds),
    }


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


if __name__ == "__main__":
    main()
