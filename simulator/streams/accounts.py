"""Dimension tables, one row per customer (devices: one to three): CRM, demographics,
subscriptions and devices. A snapshot as of the window's last day."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from features.sources import PAYMENT_METHODS, REGIONS
from simulator.population import (
    CHANNEL_SHARE,
    CONTRACT_SHARE,
    GENDER_SHARE,
    INCOME_SHARE,
    SEGMENT_SHARE,
    Population,
)
from simulator.schema import Rows, categories, ids, labels
from simulator.streams.context import ShardContext

OS_SHARE = {"android": 0.55, "ios": 0.40, "other": 0.05}


def account_rows(ctx: ShardContext) -> Iterator[Rows]:
    p = ctx.people
    yield _crm_customers(ctx, p)
    yield _demographics(p)
    yield _subscriptions(ctx, p)
    yield _device_inventory(ctx)


def _label(source: str, column: str, shares: dict[str, float], codes: np.ndarray) -> pa.Array:
    return labels(categories(source, column, shares)[0], codes)


def _crm_customers(ctx: ShardContext, p: Population) -> Rows:
    return Rows("crm_customers", {
        "customer_id": p.customer_id,
        "signup_date": ctx.window.dates(p.signup_day),
        "region": labels(REGIONS, p.region),
        "segment": _label("crm_customers", "segment", SEGMENT_SHARE, p.segment),
        "acquisition_channel": _label("crm_customers", "acquisition_channel", CHANNEL_SHARE, p.channel),
        "email_opt_in": p.email_opt_in,
    })


def _demographics(p: Population) -> Rows:
    return Rows("demographics", {
        "customer_id": p.customer_id,
        "age": p.age,
        "gender": _label("demographics", "gender", GENDER_SHARE, p.gender),
        "household_size": p.household_size,
        "income_band": _label("demographics", "income_band", INCOME_SHARE, p.income_band),
        "has_dependents": p.has_dependents,
    })


def _subscriptions(ctx: ShardContext, p: Population) -> Rows:
    """``end_date`` is the churn date when it falls inside the window (null: still a customer)."""
    left = p.churn_day < ctx.window.days
    return Rows("subscriptions", {
        "subscription_id": ids("S", p.index, 8),
        "customer_id": p.customer_id,
        "plan_id": pa.array(ctx.market.plan_ids).take(pa.array(ctx.behaviour.previous_plan)),
        "contract_type": _label("subscriptions", "contract_type", CONTRACT_SHARE, p.contract),
        "payment_method": labels(PAYMENT_METHODS, p.payment),
        "paperless_billing": p.paperless,
        "start_date": ctx.window.dates(p.signup_day),
        "end_date": pa.array(ctx.window.dates(np.where(left, p.churn_day, 0)), pa.date32(), mask=~left),
    })


def _device_inventory(ctx: ShardContext) -> Rows:
    gen = ctx.rng("device_inventory")
    customer = np.repeat(np.arange(ctx.n), 1 + gen.binomial(2, 0.3, ctx.n))
    systems, p = categories("device_inventory", "os", OS_SHARE)
    return Rows("device_inventory", {
        "device_id": ctx.event_ids("D", len(customer)),
        "customer_id": ctx.customer_ids(customer),
        "os": labels(systems, gen.choice(len(systems), len(customer), p=p)),
        "device_age_months": gen.integers(0, 60, len(customer)),
        "financed": gen.random(len(customer)) < 0.35,
    })
