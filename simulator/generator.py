"""The driver: plan a run, fan shards out (Ray tasks, or in-process for the baseline), collect
their stats and truth, and write the manifest last as the commit marker of the output."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from core import storage
from simulator.drift import Drift
from simulator.manifest import build_manifest
from simulator.market import build_market
from simulator.retention import AppliedCampaign
from simulator.shard import RunPlan, run_market, run_shard
from simulator.stats import ShardStats
from simulator.truth import SCHEMA as TRUTH_SCHEMA
from simulator.window import Window

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (finished tasks, total tasks) as shards finish."""

if TYPE_CHECKING:
    from ray import ObjectRef

    _ShardRefs = tuple[ObjectRef[ShardStats], ObjectRef[pa.Table]]
    """What a ``num_returns=2`` task's ``.remote()`` returns: Ray's typing sees one ref to the tuple."""


@dataclass(frozen=True)
class GenerationResult:
    out: str
    manifest: dict[str, Any]
    stats: ShardStats
    seconds: float


def generate(
    out: str,
    *,
    customers: int,
    days: int,
    seed: int,
    start_date: str | date,
    defect_rate: float,
    shard_size: int,
    drift: str | None = None,
    drift_start: str | date | None = None,
    campaign: AppliedCampaign | None = None,
    use_ray: bool = True,
    on_progress: Progress | None = None,
) -> GenerationResult:
    """Generate every raw source under ``out/raw`` and the truth under ``out/truth``.

    Whatever was under those two folders is replaced. ``campaign`` runs a planned campaign in the
    world as well (its day must lie in the window). ``use_ray=False`` runs the same shard
    function sequentially in this process (the benchmark's baseline); the files are identical.
    """
    if customers < 1 or days < 1 or shard_size < 1:
        raise ValueError("customers, days and shard_size must be positive")
    if not 0 <= defect_rate < 1:
        raise ValueError(f"defect_rate must be in [0, 1): {defect_rate}")
    window = Window(_date(start_date), days)
    if campaign is not None and not 0 <= campaign.day < days:
        raise ValueError(f"campaign {campaign.name} falls on day {campaign.day}, outside the {days}-day window")
    plan = RunPlan(
        out=out, seed=seed, customers=customers, shard_size=shard_size, window=window,
        drift=Drift.resolve(drift, None if drift_start is None else _date(drift_start), window),
        defect_rate=defect_rate, market=build_market(seed, window), campaign=campaign,
    )
    started = time.perf_counter()
    for folder in ("raw", "truth"):
        storage.remove_dir(storage.join(out, folder))
    progress = on_progress or (lambda done, total: None)
    results = _on_ray(plan, progress) if use_ray else _in_process(plan, progress)
    stats = _collect(results, storage.join(out, "truth", "customers.parquet"))
    manifest = build_manifest(plan, stats)
    storage.write_json_atomic(storage.join(plan.raw, "_manifest.json"), manifest)
    seconds = time.perf_counter() - started
    log.info("generated", extra={"out": out, "customers": customers, "days": days, "seconds": round(seconds, 1)})
    return GenerationResult(out, manifest, stats, seconds)


def _date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _in_process(plan: RunPlan, progress: Progress) -> Iterator[tuple[ShardStats, pa.Table | None]]:
    total = plan.shards + 1
    yield run_market(plan), None
    progress(1, total)
    for shard in range(plan.shards):
        yield run_shard(plan, shard)
        progress(shard + 2, total)


def _on_ray(plan: RunPlan, progress: Progress) -> Iterator[tuple[ShardStats, pa.Table | None]]:
    """Stats as tasks finish (for progress), then each shard's truth in shard order."""
    plan_ref = ray.put(plan)
    market = ray.remote(run_market).remote(plan_ref)
    shard_task = ray.remote(num_returns=2)(run_shard)
    shards = [cast("_ShardRefs", shard_task.remote(plan_ref, shard)) for shard in range(plan.shards)]
    pending = [market] + [stats for stats, _ in shards]
    total = len(pending)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        progress(total - len(pending), total)
        log.info("shard done", extra={"done": total - len(pending), "total": total})
        yield ray.get(done[0]), None
    for _, truth in shards:
        yield ShardStats(), ray.get(truth)


def _collect(results: Iterator[tuple[ShardStats, pa.Table | None]], truth_uri: str) -> ShardStats:
    """Consume the runner's results: sum the stats, stream truth tables into one parquet file
    (one row group per shard, so the driver holds one shard's truth at a time)."""
    fs, path = storage.resolve(truth_uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    total = ShardStats()
    with fs.open_output_stream(path) as sink, pq.ParquetWriter(sink, TRUTH_SCHEMA) as writer:
        for stats, truth in results:
            total.add(stats)
            if truth is not None:
                writer.write_table(truth)
    return total
