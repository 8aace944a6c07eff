"""The ground truth, kept apart from the raw sources (the pipeline never reads it): each
customer's latent propensity, real churn date, value, and how each retention intervention
would have worked on them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.sources import INTERVENTIONS, REGIONS
from simulator.population import NEVER, PRICE_SPREAD, SEGMENT_SHARE, Population
from simulator.schema import categories, labels
from simulator.streams.context import ShardContext

PROPENSITY_DAYS = 90
"""``churn_propensity`` is the chance of leaving within this many days at the base hazard."""

SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("region", pa.string()), ("signup_date", pa.date32()),
     ("churn_propensity", pa.float64()), ("churn_date", pa.date32()), ("customer_value", pa.float64())]
    + [(f"uplift_{name}", pa.float64()) for name in INTERVENTIONS]
    + [(f"saved_by_{name}", pa.bool_()) for name in INTERVENTIONS]
)


Responses = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
"""Per intervention: each customer's chance it keeps them, and whether it would (``responses``)."""


def truth_table(ctx: ShardContext, response: Responses) -> pa.Table:
    """The truth after the window's campaigns (``ctx.people``'s churn days), with ``response``, the
    customers' ``responses`` (drawn from ``ctx.rng("truth")``)."""
    p = ctx.people
    churns = p.churn_day < NEVER
    uplift, keeps = response
    columns = {
        "customer_id": p.customer_id,
        "region": labels(REGIONS, p.region),
        "signup_date": pa.array(ctx.window.dates(p.signup_day), pa.date32()),
        "churn_propensity": 1 - np.exp(-PROPENSITY_DAYS * p.hazard),
        "churn_date": pa.array(ctx.window.dates(np.where(churns, p.churn_day, 0)), pa.date32(), mask=~churns),
        "customer_value": np.round(12 * p.monthly_charge(ctx.market, ctx.behaviour.plan), 2),
        **{f"uplift_{k}": np.round(uplift[k], 4) for k in INTERVENTIONS},
        **{f"saved_by_{k}": churns & keeps[k] for k in INTERVENTIONS},
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def responses(p: Population, gen: np.random.Generator) -> Responses:
    """Each customer's chance that each intervention keeps them, and whether it would: one draw per
    customer and intervention, so a past campaign and the truth agree on who a contact keeps."""
    uplift = _uplifts(p, gen)
    return uplift, {k: gen.random(p.n) < uplift[k] for k in INTERVENTIONS}


def _uplifts(p: Population, gen: np.random.Generator) -> dict[str, np.ndarray]:
    """Chance each intervention, made before the churn date, keeps the customer.

    Emails only reach opted-in customers; discounts work on the price-sensitive (dear for their
    plan, month-to-month); account managers on small businesses.
    """
    n = p.n
    price_z = np.log(p.price_factor) / PRICE_SPREAD
    business = p.segment == categories("crm_customers", "segment", SEGMENT_SHARE)[0].index("small_business")
    uplift = {
        "email": np.where(p.email_opt_in, gen.beta(1.5, 25.0, n), 0.0),
        "call": gen.beta(2.0, 12.0, n),
        "discount": np.clip(
            0.12 + 0.06 * price_z + 0.08 * p.contract_is("month_to_month") + gen.normal(0, 0.05, n), 0, 0.8
        ),
        "account_manager": np.where(business, gen.beta(4.0, 6.0, n), gen.beta(1.5, 15.0, n)),
    }
    if set(uplift) != set(INTERVENTIONS):
        raise ValueError(f"uplift models {sorted(uplift)} != interventions {INTERVENTIONS}")
    return uplift
