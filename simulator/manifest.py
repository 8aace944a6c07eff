"""``raw/_manifest.json``: what was generated, with counts the ETL reconciles against.

No wall-clock time goes in, so the same arguments always give the same manifest.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.provenance import code_version
from features.sources import SOURCES
from simulator.shard import RunPlan
from simulator.stats import ShardStats


def build_manifest(plan: RunPlan, stats: ShardStats) -> dict[str, Any]:
    missing = [s.name for s in SOURCES if s.name not in stats.sources]
    if missing:
        raise RuntimeError(f"no rows were built for sources: {missing}")
    return {
        "seed": plan.seed,
        "customers": plan.customers,
        "days": plan.window.days,
        "start_date": plan.window.start.isoformat(),
        "end_date": plan.window.end.isoformat(),
        "drift": plan.drift.describe(plan.window),
        "applied_campaign": None if plan.campaign is None else {
            "campaign_id": plan.campaign.name, "listed": len(plan.campaign.customer_id),
            "date": (plan.window.start + timedelta(days=plan.campaign.day)).isoformat()},
        "defect_rate": plan.defect_rate,
        "shard_size": plan.shard_size,
        "shards": plan.shards,
        "code_version": code_version(),
        "sources": {
            s.name: {
                "format": s.format,
                "event_stream": s.is_event_stream,
                "partitioned_by": "date" if s.is_event_stream else None,
                "rows": stats.sources[s.name].rows,
                "clean_rows": stats.sources[s.name].clean_rows,
                "bytes": stats.sources[s.name].bytes,
                "files": stats.sources[s.name].files,
                "schema": [{"name": c.name, "dtype": c.dtype} for c in s.columns],
                "defects": stats.sources[s.name].defects,
            }
            for s in SOURCES
        },
    }
