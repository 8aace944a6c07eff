"""Support tickets and their resolutions, complaints and NPS answers: the voice of unhappy customers."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from simulator.events import choose, later
from simulator.schema import Rows, categories, labels
from simulator.streams.context import ShardContext

TICKETS_PER_DAY = 0.012
TICKET_SHARE = {"billing": 0.25, "network": 0.25, "device": 0.15, "account": 0.20, "other": 0.15}
PRIORITY_SHARE = {"low": 0.5, "medium": 0.35, "high": 0.15}
RESOLUTION_SHARE = {"resolved": 0.8, "escalated": 0.12, "unresolved": 0.08}
COMPLAINTS_PER_DAY = 0.0015
TOPIC_SHARE = {"price": 0.3, "coverage": 0.3, "service": 0.3, "billing_error": 0.1}
SURVEYS_PER_DAY = 0.02


def care_rows(ctx: ShardContext) -> Iterator[Rows]:
    tickets, customer, distress = _support_tickets(ctx)
    yield tickets
    yield _ticket_resolutions(ctx, tickets, customer, distress)
    yield _complaints(ctx)
    yield _nps_surveys(ctx)


def _support_tickets(ctx: ShardContext) -> tuple[Rows, np.ndarray, np.ndarray]:
    """The tickets, with each one's customer and distress (their resolutions follow them)."""
    gen = ctx.rng("support_tickets")
    distress = ctx.behaviour.distress
    prone = 1 + ctx.people.complaint_prone
    rate = ctx.daily_rate(TICKETS_PER_DAY * prone) * (1 + 10 * distress) * ctx.factor("device_tickets")
    customer, day, t = ctx.events(rate, gen)
    d = distress[customer, day]
    topics, base = categories("support_tickets", "category", TICKET_SHARE)
    weights = np.tile(base, (len(customer), 1))
    outage = ctx.factor("device_tickets", customer, day)
    for topic, at_distress, drift in (("network", 0.5, outage), ("billing", 0.5, 1.0), ("device", 0.0, outage)):
        weights[:, topics.index(topic)] = (weights[:, topics.index(topic)] + at_distress * d) * drift
    priorities, p = categories("support_tickets", "priority", PRIORITY_SHARE)
    weights_p = np.tile(p, (len(customer), 1))
    weights_p[:, priorities.index("high")] += 0.4 * d
    return Rows("support_tickets", {
        "ticket_id": ctx.event_ids("T", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "category": labels(topics, choose(gen, weights)),
        "priority": labels(priorities, choose(gen, weights_p)),
    }, event_day=day), customer, d


def _ticket_resolutions(ctx: ShardContext, tickets: Rows, customer: np.ndarray, distress: np.ndarray) -> Rows:
    gen = ctx.rng("ticket_resolutions")
    t = later(gen, tickets.table["event_time"].to_numpy().astype(np.int64), median_hours=20.0)
    keep = ctx.alive(customer, t)
    d = distress[keep]
    outcomes, base = categories("ticket_resolutions", "resolution", RESOLUTION_SHARE)
    weights = np.tile(base, (len(d), 1)) + np.outer(d, [-0.3, 0.15, 0.15])
    return Rows("ticket_resolutions", {
        "ticket_id": tickets.table["ticket_id"].filter(keep),
        "customer_id": tickets.table["customer_id"].filter(keep),
        "event_time": t[keep],
        "resolution": labels(outcomes, choose(gen, np.clip(weights, 0.01, None))),
        "satisfaction": np.rint(4.2 - 2.2 * d + gen.normal(0.0, 0.9, len(d))),
    }, event_day=ctx.window.day_of(t[keep]))


def _complaints(ctx: ShardContext) -> Rows:
    gen = ctx.rng("complaints")
    distress = ctx.behaviour.distress
    price_drift = ctx.factor("price_complaints")
    rate = ctx.daily_rate(COMPLAINTS_PER_DAY * (1 + 3 * ctx.people.complaint_prone))
    customer, day, t = ctx.events(rate * (1 + 12 * distress) * (1 + 0.3 * (price_drift - 1)), gen)
    topics, base = categories("complaints", "topic", TOPIC_SHARE)
    weights = np.tile(base, (len(customer), 1))
    weights[:, topics.index("price")] *= price_drift[customer, day]
    return Rows("complaints", {
        "complaint_id": ctx.event_ids("CP", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "severity": 1 + gen.binomial(4, 0.3 + 0.3 * distress[customer, day]),
        "topic": labels(topics, choose(gen, weights)),
    }, event_day=day)


def _nps_surveys(ctx: ShardContext) -> Rows:
    gen = ctx.rng("nps_surveys")
    mood = gen.normal(8.0, 1.3, ctx.n) - 1.0 * ctx.people.complaint_prone
    customer, day, t = ctx.events(ctx.daily_rate(SURVEYS_PER_DAY), gen)
    score = mood[customer] - 6.0 * ctx.behaviour.distress[customer, day] + gen.normal(0.0, 1.2, len(customer))
    return Rows("nps_surveys", {
        "response_id": ctx.event_ids("R", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "score": np.rint(score),
    }, event_day=day)
