"""Market-level sources, built once per run and shared by every shard: the plans on sale and the
daily network quality per region (which also drive customer behaviour), and competitor offers."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from features.sources import PLAN_TIERS, REGIONS
from simulator.drift import Drift
from simulator.events import seconds_of_day
from simulator.randomness import rng
from simulator.schema import Rows, categories, ids, labels
from simulator.window import Window

TIER_PRICE = {"basic": 20.0, "standard": 40.0, "premium": 65.0, "unlimited": 90.0}
TIER_DATA_GB = {"basic": 5.0, "standard": 25.0, "premium": 80.0, "unlimited": 10_000.0}
PLAN_VARIANTS = (0.85, 1.0, 1.2)
"""Price multiplier of each tier's plans; the dearest variant includes streaming."""
REGION_LATENCY_MS = {"north": 35.0, "south": 70.0, "east": 40.0, "west": 38.0, "central": 62.0}
POOR_NETWORK_MS = 50.0
OFFERS_PER_REGION_DAY = 0.45
COMPETITORS = {"rival_a": 0.5, "rival_b": 0.3, "rival_c": 0.2}


@dataclass(frozen=True)
class Market:
    plan_ids: tuple[str, ...]
    plan_tier: np.ndarray
    plan_price: np.ndarray
    latency_ms: np.ndarray
    """[region, day] over the window."""
    outage_minutes: np.ndarray
    """[region, day] over the window."""

    @property
    def poor_network(self) -> np.ndarray:
        """bool per region: a structurally worse network (a churn driver)."""
        return np.array([REGION_LATENCY_MS[r] > POOR_NETWORK_MS for r in REGIONS])

    def plans_of_tier(self, tier: np.ndarray, pick: np.ndarray) -> np.ndarray:
        """A plan index within each given tier; ``pick`` in [0, 1) chooses the variant."""
        return tier * len(PLAN_VARIANTS) + (pick * len(PLAN_VARIANTS)).astype(np.int64)


def build_market(seed: int, window: Window) -> Market:
    gen = rng(seed, "network_quality")
    base = np.array([REGION_LATENCY_MS[r] for r in REGIONS])[:, None]
    shape = (len(REGIONS), window.days)
    latency = base * gen.lognormal(0.0, 0.15, shape)
    outage_odds = np.where(base > POOR_NETWORK_MS, 0.12, 0.05)
    outage = np.where(gen.random(shape) < outage_odds, gen.exponential(60.0, shape), 0.0)
    tiers = np.repeat(np.arange(len(PLAN_TIERS)), len(PLAN_VARIANTS))
    variants = np.tile(np.array(PLAN_VARIANTS), len(PLAN_TIERS))
    return Market(
        plan_ids=tuple(f"PLAN-{t.upper()}-{v + 1}" for t in PLAN_TIERS for v in range(len(PLAN_VARIANTS))),
        plan_tier=tiers,
        plan_price=np.round(np.array([TIER_PRICE[PLAN_TIERS[t]] for t in tiers]) * variants, 2),
        latency_ms=np.round(latency, 1),
        outage_minutes=np.round(np.minimum(outage, 1_440.0), 1),
    )


def market_rows(market: Market, seed: int, window: Window, drift: Drift) -> Iterator[Rows]:
    """plans_catalogue, network_quality and competitor_offers: not per customer, written once."""
    tiers = market.plan_tier
    yield Rows("plans_catalogue", {
        "plan_id": np.array(market.plan_ids, dtype=object),
        "tier": labels(PLAN_TIERS, tiers),
        "monthly_price": market.plan_price,
        "data_gb": np.array([TIER_DATA_GB[PLAN_TIERS[t]] for t in tiers]),
        "includes_streaming": np.tile(np.arange(len(PLAN_VARIANTS)) == len(PLAN_VARIANTS) - 1, len(PLAN_TIERS)),
    })
    region, day = np.divmod(np.arange(len(REGIONS) * window.days), window.days)
    yield Rows("network_quality", {
        "region": labels(REGIONS, region),
        "event_time": window.timestamps(day),
        "latency_ms": market.latency_ms[region, day],
        "outage_minutes": market.outage_minutes[region, day],
    }, event_day=day)
    yield _competitor_offers(seed, window, drift)


def _competitor_offers(seed: int, window: Window, drift: Drift) -> Rows:
    gen = rng(seed, "competitor_offers")
    regions = np.arange(len(REGIONS))[:, None]
    days = np.arange(window.days)[None, :]
    counts = gen.poisson(OFFERS_PER_REGION_DAY * drift.factor("competitor_offers", regions, days))
    region, day = np.divmod(np.repeat(np.arange(counts.size), counts.ravel()), window.days)
    competitors, p = categories("competitor_offers", "competitor", COMPETITORS)
    discount = gen.uniform(5.0, 30.0, region.size) * drift.factor("competitor_discount", region, day)
    return Rows("competitor_offers", {
        "offer_id": ids("OFF-", np.arange(region.size), 7),
        "region": labels(REGIONS, region),
        "event_time": window.timestamps(day, seconds_of_day(gen, region.size)),
        "competitor": labels(competitors, gen.choice(len(competitors), region.size, p=p)),
        "discount_pct": np.round(discount, 1),
    }, event_day=day)
