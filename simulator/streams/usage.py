"""Daily usage, app sessions and web visits: the volume signals that fade before churn."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from simulator.events import choose
from simulator.schema import Rows, categories, labels
from simulator.streams.context import ShardContext

TIER_DATA_MB = np.array([250.0, 700.0, 1_500.0, 3_000.0])
"""Median daily data per plan tier (PLAN_TIERS order)."""
USAGE_DROP = {"data": 0.6, "voice": 0.55, "sms": 0.4, "sessions": 0.7}
"""Usage lost at full distress."""
SESSIONS_PER_DAY = 0.25
CRASH_ODDS = 0.02
VISITS_PER_DAY = 0.06
PAGE_SHARE = {"home": 0.35, "billing": 0.30, "plans": 0.15, "support": 0.17, "cancel": 0.03}
CANCEL_AT_DISTRESS = 1.5
"""Weight added to the cancel page at full distress."""


def usage_rows(ctx: ShardContext) -> Iterator[Rows]:
    yield _usage_daily(ctx)
    yield _app_sessions(ctx)
    yield _web_visits(ctx)


def _weekend(ctx: ShardContext, day: np.ndarray) -> np.ndarray:
    return (ctx.window.epoch_day + day + 3) % 7 >= 5  # 1970-01-01 was a Thursday


def _usage_daily(ctx: ShardContext) -> Rows:
    gen = ctx.rng("usage_daily")
    b = ctx.behaviour
    customer, day = np.nonzero(b.active)
    n = len(customer)
    distress = b.distress[customer, day]
    tier = ctx.market.plan_tier[b.plan_on(customer, day)]
    data_taste = gen.lognormal(0.0, 0.5, ctx.n)[customer]
    voice_taste = gen.lognormal(np.log(20.0), 0.6, ctx.n)[customer]
    sms_taste = gen.lognormal(np.log(4.0), 0.7, ctx.n)[customer]
    voice = voice_taste * gen.lognormal(0.0, 0.4, n) * (1 - USAGE_DROP["voice"] * distress)
    latency = ctx.market.latency_ms[ctx.people.region[customer], day]
    return Rows("usage_daily", {
        "customer_id": ctx.customer_ids(customer),
        "event_time": ctx.window.timestamps(day),
        "data_mb": np.round(
            TIER_DATA_MB[tier] * data_taste * (1 + 0.15 * _weekend(ctx, day)) * gen.lognormal(0.0, 0.35, n)
            * (1 - USAGE_DROP["data"] * distress), 1),
        "voice_minutes": np.round(voice, 1),
        "sms_count": gen.poisson(sms_taste * (1 - USAGE_DROP["sms"] * distress)),
        "dropped_calls": gen.poisson(voice / 60 * 0.1 * latency / 40),
    }, event_day=day)


def _app_sessions(ctx: ShardContext) -> Rows:
    gen = ctx.rng("app_sessions")
    taste = gen.lognormal(0.0, 0.6, ctx.n)
    engaged = 1 - USAGE_DROP["sessions"] * ctx.behaviour.distress
    rate = ctx.daily_rate(SESSIONS_PER_DAY * taste) * engaged * ctx.factor("app_sessions")
    customer, day, t = ctx.events(rate, gen)
    n = len(customer)
    return Rows("app_sessions", {
        "session_id": ctx.event_ids("AS", n),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "duration_s": np.round(gen.lognormal(np.log(180.0), 0.9, n), 1),
        "screens": 1 + gen.poisson(6.0, n),
        "crashed": gen.random(n) < CRASH_ODDS * ctx.factor("app_crashes", customer, day),
    }, event_day=day)


def _web_visits(ctx: ShardContext) -> Rows:
    gen = ctx.rng("web_visits")
    distress = ctx.behaviour.distress
    customer, day, t = ctx.events(ctx.daily_rate(VISITS_PER_DAY) * (1 + 2 * distress), gen)
    pages, base = categories("web_visits", "page", PAGE_SHARE)
    weights = np.tile(base, (len(customer), 1))
    cancel = pages.index("cancel")
    weights[:, cancel] += CANCEL_AT_DISTRESS * distress[customer, day] ** 1.5
    weights[:, cancel] *= ctx.factor("cancel_visits", customer, day)
    return Rows("web_visits", {
        "visit_id": ctx.event_ids("WV", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "page": labels(pages, choose(gen, weights)),
        "duration_s": np.round(gen.lognormal(np.log(90.0), 0.8, len(customer)), 1),
    }, event_day=day)
