"""Latent customers of one shard: static attributes, churn propensity and churn dates.

The churn process is a daily hazard: a per-customer base rate from static drivers plus noise,
multiplied by the drift scenario's regional factor from its start day. Each customer's churn
day is the first day their cumulative hazard exceeds an Exp(1) draw (inverse-transform
sampling), computed per region with a search over the regional cumulative multiplier.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from features.sources import REGIONS
from simulator.drift import Drift
from simulator.market import Market
from simulator.schema import categories, ids
from simulator.window import Window

NEVER = 10**9
"""Churn day of a customer who stays through the simulation horizon."""

REGION_SHARE = {"north": 0.22, "south": 0.20, "east": 0.20, "west": 0.20, "central": 0.18}
SEGMENT_SHARE = {"consumer": 0.85, "small_business": 0.15}
CHANNEL_SHARE = {"store": 0.35, "web": 0.35, "partner": 0.15, "referral": 0.15}
GENDER_SHARE = {"F": 0.49, "M": 0.49, "X": 0.02}
INCOME_SHARE = {"low": 0.3, "middle": 0.5, "high": 0.2}
TIER_SHARE = {"basic": 0.30, "standard": 0.35, "premium": 0.25, "unlimited": 0.10}
CONTRACT_SHARE = {"month_to_month": 0.55, "one_year": 0.25, "two_year": 0.20}
PAYMENT_SHARE = {"card": 0.30, "bank_transfer": 0.22, "electronic_check": 0.33, "mailed_check": 0.15}
TENURE_YEARS = 6
NEW_SIGNUP_SHARE = 0.05
PRICE_SPREAD = 0.12
"""Sd of the log ratio between a customer's monthly charge and their plan's list price."""

LOG_HAZARD = {
    "month_to_month": 1.1, "one_year": 0.4, "electronic_check": 0.6, "tenure_under_1y": 0.7,
    "tenure_1_to_2y": 0.3, "price_z": 0.35, "poor_network": 0.4, "young": 0.35, "no_dependents": 0.25,
    "complaint_prone": 0.6, "noise_sd": 0.5,
}
"""Log-hazard weights of the static churn drivers (``price_z``: per sd of the price ratio)."""
BASE_HAZARD = 0.00033
"""Daily hazard of a customer with no driver (two-year contract, card, long tenure...)."""


def _pick(gen: np.random.Generator, n: int, source: str, column: str, shares: dict[str, float]) -> np.ndarray:
    _, p = categories(source, column, shares)
    return gen.choice(len(p), n, p=p)


@dataclass(frozen=True)
class Population:
    index: np.ndarray
    customer_id: pa.Array
    region: np.ndarray
    segment: np.ndarray
    channel: np.ndarray
    email_opt_in: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    household_size: np.ndarray
    income_band: np.ndarray
    has_dependents: np.ndarray
    contract: np.ndarray
    payment: np.ndarray
    paperless: np.ndarray
    plan: np.ndarray
    price_factor: np.ndarray
    signup_day: np.ndarray
    """Relative to the window's first day: negative for customers who joined before it."""
    complaint_prone: np.ndarray
    hazard: np.ndarray
    """Daily base churn hazard (before drift)."""
    churn_day: np.ndarray
    """Day the customer leaves (relative to the window start), NEVER within the horizon."""

    @property
    def n(self) -> int:
        return len(self.index)

    def monthly_charge(self, market: Market, plan: np.ndarray, customer: np.ndarray | None = None) -> np.ndarray:
        """What ``customer`` (all, by default) pays a month on ``plan``: list price times their factor."""
        factor = self.price_factor if customer is None else self.price_factor[customer]
        return np.round(market.plan_price[plan] * factor, 2)

    def contract_is(self, name: str) -> np.ndarray:
        return self.contract == categories("subscriptions", "contract_type", CONTRACT_SHARE)[0].index(name)

    def payment_is(self, name: str) -> np.ndarray:
        return self.payment == categories("subscriptions", "payment_method", PAYMENT_SHARE)[0].index(name)


def build_population(
    first: int, n: int, window: Window, market: Market, drift: Drift, gen: np.random.Generator
) -> Population:
    """Customers ``first .. first+n-1`` (global indices, so ids are unique across shards)."""
    index = np.arange(first, first + n)
    has_dependents = gen.random(n) < 0.35
    household = np.where(has_dependents, 2 + gen.poisson(1.3, n), 1 + (gen.random(n) < 0.45))
    tier = _pick(gen, n, "plans_catalogue", "tier", TIER_SHARE)
    new = gen.random(n) < NEW_SIGNUP_SHARE
    tenure_days = 1 + (TENURE_YEARS * 365 * gen.random(n) ** 1.5).astype(np.int64)
    signup_day = np.where(new, gen.integers(0, window.days, n), -tenure_days)
    payment = _pick(gen, n, "subscriptions", "payment_method", PAYMENT_SHARE)
    people = Population(
        index=index,
        customer_id=ids("C", index, 8),
        region=_pick(gen, n, "crm_customers", "region", REGION_SHARE),
        segment=_pick(gen, n, "crm_customers", "segment", SEGMENT_SHARE),
        channel=_pick(gen, n, "crm_customers", "acquisition_channel", CHANNEL_SHARE),
        email_opt_in=gen.random(n) < 0.7,
        age=np.clip(np.rint(gen.normal(44, 15, n)), 18, 90).astype(np.int64),
        gender=_pick(gen, n, "demographics", "gender", GENDER_SHARE),
        household_size=np.minimum(household, 12),
        income_band=_pick(gen, n, "demographics", "income_band", INCOME_SHARE),
        has_dependents=has_dependents,
        contract=_pick(gen, n, "subscriptions", "contract_type", CONTRACT_SHARE),
        payment=payment,
        paperless=gen.random(n) < 0.6,
        plan=market.plans_of_tier(tier, gen.random(n)),
        price_factor=np.exp(gen.normal(0.0, PRICE_SPREAD, n)),
        signup_day=signup_day,
        complaint_prone=gen.random(n) < 0.15,
        hazard=np.zeros(n),
        churn_day=np.zeros(n, dtype=np.int64),
    )
    hazard = BASE_HAZARD * np.exp(_log_hazard(people, market, gen))
    churn_day = _churn_days(hazard, people.region, signup_day, drift, window, gen)
    return replace(people, hazard=hazard, churn_day=churn_day)


def _log_hazard(p: Population, market: Market, gen: np.random.Generator) -> np.ndarray:
    w = LOG_HAZARD
    tenure = -np.minimum(p.signup_day, 0)
    return (
        w["month_to_month"] * p.contract_is("month_to_month")
        + w["one_year"] * p.contract_is("one_year")
        + w["electronic_check"] * p.payment_is("electronic_check")
        + w["tenure_under_1y"] * (tenure < 365)
        + w["tenure_1_to_2y"] * ((tenure >= 365) & (tenure < 730))
        + w["price_z"] * np.log(p.price_factor) / PRICE_SPREAD
        + w["poor_network"] * market.poor_network[p.region]
        + w["young"] * (p.age < 30)
        + w["no_dependents"] * ~p.has_dependents
        + w["complaint_prone"] * p.complaint_prone
        + gen.normal(0.0, w["noise_sd"], p.n)
    )


def _churn_days(
    hazard: np.ndarray, region: np.ndarray, signup_day: np.ndarray, drift: Drift, window: Window,
    gen: np.random.Generator,
) -> np.ndarray:
    days = np.arange(window.horizon)
    regions = np.arange(len(REGIONS))
    cumulative = np.cumsum(drift.factor("hazard", regions[:, None], days[None, :]), axis=1)
    # a customer joining on day s is at risk from day s+1: their clock starts at cumulative[s]
    start = np.maximum(signup_day, 0)
    offset = np.where(signup_day >= 0, cumulative[region, np.minimum(start, window.horizon - 1)], 0.0)
    need = gen.exponential(size=len(hazard)) / hazard + offset
    churn = np.full(len(hazard), NEVER, dtype=np.int64)
    for r in regions:
        members = region == r
        churn[members] = np.searchsorted(cumulative[r], need[members], side="left")
    churn[churn >= window.horizon] = NEVER
    return churn
