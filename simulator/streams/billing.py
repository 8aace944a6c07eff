"""Plan changes, monthly invoices, the payments that follow them (some late), and refunds."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from features.sources import PAYMENT_METHODS
from simulator.events import choose
from simulator.population import NEVER
from simulator.schema import Rows, categories, labels
from simulator.streams.context import ShardContext
from simulator.window import US_PER_DAY

DUE_DAYS = np.array([14, 21, 30])
LATE_ODDS = {"base": 0.04, "electronic_check": 0.08, "mailed_check": 0.05, "distress": 0.6}
MEAN_DAYS_LATE = 8.0
REFUNDS_PER_DAY = 0.002
REFUND_SHARE = {"outage": 0.2, "billing_error": 0.4, "goodwill": 0.4}


def billing_rows(ctx: ShardContext) -> Iterator[Rows]:
    yield _plan_changes(ctx)
    invoices, customer, day = _invoices(ctx)
    yield invoices
    payments, late = _payments(ctx, invoices, customer, day)
    yield payments
    yield late
    yield _refunds(ctx)


def _plan_changes(ctx: ShardContext) -> Rows:
    b = ctx.behaviour
    customer = np.flatnonzero(b.plan_change_day < NEVER)
    day = b.plan_change_day[customer]
    plan_ids = pa.array(ctx.market.plan_ids)
    before, after = b.previous_plan[customer], b.plan[customer]
    up = ctx.market.plan_tier[after] > ctx.market.plan_tier[before]
    gen = ctx.rng("plan_changes")
    return Rows("plan_changes", {
        "change_id": ctx.event_ids("PC", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": ctx.window.timestamps(day, gen.integers(0, 86_400, len(customer))),
        "from_plan": plan_ids.take(pa.array(before)),
        "to_plan": plan_ids.take(pa.array(after)),
        "direction": pa.array(np.where(up, "upgrade", "downgrade").astype(object), pa.string()),
    }, event_day=day)


def _billing_days(ctx: ShardContext) -> tuple[np.ndarray, np.ndarray]:
    """(customer, day) of every invoice: monthly, on the signup day of month (capped at 28)."""
    signup = np.array(ctx.window.dates(ctx.people.signup_day), dtype="datetime64[D]")
    day_of_month = np.minimum((signup - signup.astype("datetime64[M]")).astype(np.int64), 27)
    first = np.datetime64(ctx.window.start, "M")
    months = np.arange(first, np.datetime64(ctx.window.end, "M") + 1)
    start = np.datetime64(ctx.window.start, "D")
    day = ((months.astype("datetime64[D]")[None, :] - start).astype(np.int64) + day_of_month[:, None])
    customer = np.broadcast_to(np.arange(ctx.n)[:, None], day.shape)
    valid = (day >= 0) & (day < ctx.window.days) & (day > ctx.people.signup_day[:, None])
    valid[valid] &= ctx.behaviour.active[customer[valid], day[valid]]
    return customer[valid], day[valid]


def _invoices(ctx: ShardContext) -> tuple[Rows, np.ndarray, np.ndarray]:
    """The invoices with each one's customer and day (their payments follow them)."""
    gen = ctx.rng("billing_invoices")
    customer, day = _billing_days(ctx)
    charge = ctx.people.monthly_charge(ctx.market, ctx.behaviour.plan_on(customer, day), customer)
    extras = 1 + 0.08 * gen.exponential(1.0, len(customer))
    amount = charge * extras * ctx.factor("invoice_amount", customer, day)
    return Rows("billing_invoices", {
        "invoice_id": ctx.event_ids("INV", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": ctx.window.timestamps(day, gen.integers(2 * 3_600, 3 * 3_600, len(customer))),
        "amount": np.round(amount, 2),
        "due_days": gen.choice(DUE_DAYS, len(customer)),
    }, event_day=day), customer, day


def _payments(ctx: ShardContext, invoices: Rows, customer: np.ndarray, day: np.ndarray) -> tuple[Rows, Rows]:
    """Payments of the invoices, when they fall in the window and the customer's life, and the
    late ones among them."""
    gen = ctx.rng("payments")
    p = ctx.people
    due = invoices.table["due_days"].to_numpy()
    odds = (LATE_ODDS["base"] + LATE_ODDS["electronic_check"] * p.payment_is("electronic_check")[customer]
            + LATE_ODDS["mailed_check"] * p.payment_is("mailed_check")[customer]
            + LATE_ODDS["distress"] * ctx.behaviour.distress[customer, day])
    late = gen.random(len(customer)) < odds
    days_after = np.where(late, due + 1 + gen.geometric(1 / MEAN_DAYS_LATE, len(customer)),
                          (gen.random(len(customer)) * (due + 1)).astype(np.int64))
    issued = invoices.table["event_time"].to_numpy().astype(np.int64)
    t = issued + days_after * US_PER_DAY + gen.integers(3_600, 20 * 3_600, len(customer)) * 1_000_000
    paid = ctx.alive(customer, t)
    payments = Rows("payments", {
        "payment_id": ctx.event_ids("PAY", int(paid.sum())),
        "customer_id": invoices.table["customer_id"].filter(paid),
        "invoice_id": invoices.table["invoice_id"].filter(paid),
        "event_time": t[paid],
        "amount": invoices.table["amount"].to_numpy()[paid],
        "method": labels(PAYMENT_METHODS, p.payment[customer[paid]]),
    }, event_day=ctx.window.day_of(t[paid]))
    is_late = paid & late
    amount = invoices.table["amount"].to_numpy()[is_late]
    late_rows = Rows("late_payments", {
        "late_id": ctx.event_ids("LP", int(is_late.sum())),
        "customer_id": invoices.table["customer_id"].filter(is_late),
        "invoice_id": invoices.table["invoice_id"].filter(is_late),
        "event_time": t[is_late],
        "days_late": (days_after - due)[is_late],
        "fee": np.round(5.0 + 0.05 * amount, 2),
    }, event_day=ctx.window.day_of(t[is_late]))
    return payments, late_rows


def _refunds(ctx: ShardContext) -> Rows:
    gen = ctx.rng("refunds")
    outage_hours = ctx.market.outage_minutes[ctx.people.region] / 60
    rate = ctx.daily_rate(REFUNDS_PER_DAY) * (1 + 3 * ctx.behaviour.distress + outage_hours)
    customer, day, t = ctx.events(rate, gen)
    reasons, base = categories("refunds", "reason", REFUND_SHARE)
    weights = np.tile(base, (len(customer), 1))
    weights[:, reasons.index("outage")] += outage_hours[customer, day]
    weights[:, reasons.index("goodwill")] += ctx.behaviour.distress[customer, day]
    charge = ctx.people.monthly_charge(ctx.market, ctx.behaviour.plan_on(customer, day), customer)
    return Rows("refunds", {
        "refund_id": ctx.event_ids("RF", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "event_time": t,
        "amount": np.round(charge * gen.uniform(0.05, 0.5, len(customer)), 2),
        "reason": labels(reasons, choose(gen, weights)),
    }, event_day=day)
