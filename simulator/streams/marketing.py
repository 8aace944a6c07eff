"""Marketing touches, the responses some of them get, and referrals by happy customers."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from simulator.events import choose, later
from simulator.schema import Rows, allowed, categories, labels
from simulator.streams.context import ShardContext

TOUCHES_PER_DAY = 0.05
CHANNEL_SHARE = {"email": 0.5, "sms": 0.2, "push": 0.2, "call": 0.1}
FUNNEL = (0.35, 0.3, 0.15)
"""Chance a touch is opened; an opened one clicked; a clicked one converted."""
REFERRALS_PER_DAY = 0.0008


def marketing_rows(ctx: ShardContext) -> Iterator[Rows]:
    touches, customer, distress = _marketing_touches(ctx)
    yield touches
    yield _campaign_responses(ctx, touches, customer, distress)
    yield _referrals(ctx)


def _marketing_touches(ctx: ShardContext) -> tuple[Rows, np.ndarray, np.ndarray]:
    """The touches, with each one's customer and distress (the responses follow them)."""
    gen = ctx.rng("marketing_touches")
    customer, day, t = ctx.events(ctx.daily_rate(TOUCHES_PER_DAY), gen)
    channels, base = categories("marketing_touches", "channel", CHANNEL_SHARE)
    weights = np.tile(base, (len(customer), 1))
    weights[:, channels.index("email")] *= ctx.people.email_opt_in[customer]
    return Rows("marketing_touches", {
        "touch_id": ctx.event_ids("MT", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "channel": labels(channels, choose(gen, weights)),
    }, event_day=day), customer, ctx.behaviour.distress[customer, day]


def _campaign_responses(ctx: ShardContext, touches: Rows, customer: np.ndarray, distress: np.ndarray) -> Rows:
    """The furthest funnel stage each touch reached, if any; distressed customers engage less."""
    gen = ctx.rng("campaign_responses")
    u = gen.random((len(customer), len(FUNNEL)))
    stage = np.cumprod(u < np.array(FUNNEL) * (1 - 0.5 * distress)[:, None], axis=1).sum(axis=1)
    t = later(gen, touches.table["event_time"].to_numpy().astype(np.int64), median_hours=6.0)
    keep = (stage > 0) & ctx.alive(customer, t)
    return Rows("campaign_responses", {
        "touch_id": touches.table["touch_id"].filter(keep),
        "customer_id": touches.table["customer_id"].filter(keep),
        "event_time": t[keep],
        "response": labels(allowed("campaign_responses", "response"), stage[keep] - 1),
    }, event_day=ctx.window.day_of(t[keep]))


def _referrals(ctx: ShardContext) -> Rows:
    gen = ctx.rng("referrals")
    customer, day, t = ctx.events(ctx.daily_rate(REFERRALS_PER_DAY) * (1 - ctx.behaviour.distress), gen)
    return Rows("referrals", {
        "referral_id": ctx.event_ids("RE", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "rewarded": gen.random(len(customer)) < 0.6,
    }, event_day=day)
