"""One unit of parallel work: a shard of customers (or the market-level sources), from latent
customers to files on storage. Called as a Ray task, or in-process by the baseline runner."""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pyarrow as pa

from core import storage
from simulator.behaviour import build_behaviour
from simulator.defects import TEXT_FORMATS, break_text, break_values, plan_defects, with_duplicates
from simulator.drift import Drift
from simulator.market import Market, market_rows
from simulator.population import build_population
from simulator.randomness import rng
from simulator.retention import AppliedCampaign, apply_to, contact_rows, run_campaigns
from simulator.schema import Rows
from simulator.stats import ShardStats, SourceStats
from simulator.streams import ShardContext, customer_rows
from simulator.text import tokens
from simulator.truth import responses, truth_table
from simulator.window import Window
from simulator.writer import write_source

MARKET_SHARD = 0
"""Shard number in the file names of the market-level sources (written by a single task)."""


@dataclass(frozen=True)
class RunPlan:
    """Everything a shard needs, shared by all of them (market and drift built once)."""

    out: str
    seed: int
    customers: int
    shard_size: int
    window: Window
    drift: Drift
    defect_rate: float
    market: Market
    campaign: AppliedCampaign | None = None
    """A planned campaign run in this world on its day, after the past ones."""

    @property
    def shards(self) -> int:
        return math.ceil(self.customers / self.shard_size)

    @property
    def raw(self) -> str:
        return storage.join(self.out, "raw")


def run_shard(plan: RunPlan, shard: int) -> tuple[ShardStats, pa.Table]:
    """Build, break and write every per-customer source of one shard; return its stats and truth."""
    first = shard * plan.shard_size
    n = min(plan.shard_size, plan.customers - first)
    people = build_population(first, n, plan.window, plan.market, plan.drift, rng(plan.seed, "population", shard))
    behaviour = build_behaviour(people, plan.window, plan.market, rng(plan.seed, "behaviour", shard))
    response = responses(people, rng(plan.seed, "truth", shard))
    campaigns, churn_day = run_campaigns(people, plan.window, response[1], rng(plan.seed, "retention", shard),
                                       plan.campaign)
    people, behaviour = apply_to(people, behaviour, campaigns, churn_day)
    ctx = ShardContext(plan.seed, shard, plan.window, plan.drift, plan.market, people, behaviour)
    existing = people.signup_day < 0
    stats = ShardStats(
        customers=n,
        active_at_start=int(existing.sum()),
        churned_in_window=int((existing & (people.churn_day < plan.window.days)).sum()),
    )
    for rows in chain(customer_rows(ctx), [contact_rows(people, plan.window, campaigns, shard)]):
        stats.sources[rows.source.name] = emit(plan, shard, rows)
    return stats, truth_table(ctx, response)


def run_market(plan: RunPlan) -> ShardStats:
    stats = ShardStats()
    for rows in market_rows(plan.market, plan.seed, plan.window, plan.drift):
        stats.sources[rows.source.name] = emit(plan, MARKET_SHARD, rows)
    return stats


def emit(plan: RunPlan, shard: int, rows: Rows) -> SourceStats:
    """Inject the source's defects into its clean rows and write them out."""
    source, n = rows.source, rows.table.num_rows
    gen = rng(plan.seed, f"defects:{source.name}", shard)
    defects = plan_defects(source, n, rows.event_day, plan.window.days, plan.defect_rate, gen)
    table = break_values(rows.table, source, defects, gen)
    if source.format in TEXT_FORMATS:
        table = break_text(tokens(table, source, source.format), source.format, defects, gen)
    event_day = rows.event_day if rows.event_day is not None else np.zeros(n, np.int64)
    order, arrival = with_duplicates(event_day, defects)
    fs, raw = storage.resolve(plan.raw)
    nbytes, files = write_source(
        fs, raw, source, shard, table.take(pa.array(order)), arrival if source.is_event_stream else None, plan.window
    )
    return SourceStats(rows=len(order), clean_rows=n, bytes=nbytes, files=files, defects=defects.counts())
