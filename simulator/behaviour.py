"""Day-by-day behaviour state of a shard's customers, shared by every stream.

``distress`` in [0, 1] is what the streams react to (less usage, more tickets and cancel-page
visits, lower NPS, late payments...). It ramps up over the weeks before a customer's churn date,
and non-churners have occasional bad spells of the same shape, so the signal is learnable but
not trivial. Plan changes are decided here because both subscriptions and invoices need them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.sources import PLAN_TIERS
from simulator.market import Market
from simulator.population import NEVER, Population
from simulator.window import Window

RAMP_DAYS = (25, 50)
"""Range of how many days before their churn date a churner's behaviour starts to change."""
RAMP_STRENGTH = (4.0, 1.2)
"""Beta parameters of a churner's peak distress (some churners show little)."""
SPELL_SHARE = 0.15
SPELL_DAYS = (10, 40)
SPELL_STRENGTH = (1.5, 2.0)
"""Beta parameters of a non-churning bad spell's peak distress."""
PLAN_CHANGE_ODDS = (0.04, 0.25)
"""Chance of one plan change in the window: base, plus this much times peak distress."""


@dataclass(frozen=True)
class Behaviour:
    active: np.ndarray
    """bool [customer, day]: a customer that day (signed up, not yet churned)."""
    distress: np.ndarray
    """float32 [customer, day] in [0, 1]."""
    previous_plan: np.ndarray
    plan: np.ndarray
    """The plan in force at the end of the window (after any change)."""
    plan_change_day: np.ndarray
    """Day of the customer's plan change, NEVER if none."""

    def plan_on(self, customer: np.ndarray, day: np.ndarray) -> np.ndarray:
        return np.where(day >= self.plan_change_day[customer], self.plan[customer], self.previous_plan[customer])


def build_behaviour(people: Population, window: Window, market: Market, gen: np.random.Generator) -> Behaviour:
    day = np.arange(window.days)[None, :]
    active = (day >= people.signup_day[:, None]) & (day <= people.churn_day[:, None])
    distress = np.maximum(_pre_churn_ramp(people, day, gen), _bad_spells(people.n, window, gen))
    change_day, plan = _plan_changes(people, active, distress, market, gen)
    return Behaviour(active, (distress * active).astype(np.float32), people.plan, plan, change_day)


def _pre_churn_ramp(people: Population, day: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    n = people.n
    length = gen.uniform(*RAMP_DAYS, n)[:, None]
    strength = np.where(people.churn_day < NEVER, gen.beta(*RAMP_STRENGTH, n), 0.0)[:, None]
    until_churn = people.churn_day[:, None].astype(float) - day
    return strength * np.clip(1.0 - until_churn / length, 0.0, 1.0)


def _bad_spells(n: int, window: Window, gen: np.random.Generator) -> np.ndarray:
    """Triangular spells of distress (peak mid-spell) for a share of customers."""
    length = gen.uniform(*SPELL_DAYS, n)[:, None]
    middle = gen.uniform(-SPELL_DAYS[1] / 2, window.days, n)[:, None]
    strength = np.where(gen.random(n) < SPELL_SHARE, gen.beta(*SPELL_STRENGTH, n), 0.0)[:, None]
    day = np.arange(window.days)[None, :]
    return strength * np.clip(1.0 - np.abs(day - middle) / (length / 2), 0.0, 1.0)


def _plan_changes(
    people: Population, active: np.ndarray, distress: np.ndarray, market: Market, gen: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """At most one change per customer, on an active day; distressed customers downgrade."""
    n = people.n
    active_days = active.sum(axis=1)
    changes = (gen.random(n) < PLAN_CHANGE_ODDS[0] + PLAN_CHANGE_ODDS[1] * distress.max(axis=1)) & (active_days > 0)
    first_active = np.argmax(active, axis=1)
    day = first_active + (gen.random(n) * active_days).astype(np.int64)
    tier = market.plan_tier[people.plan]
    downgrade = gen.random(n) < 0.3 + 0.6 * distress[np.arange(n), np.minimum(day, active.shape[1] - 1)]
    downgrade = np.where(tier == 0, False, np.where(tier == len(PLAN_TIERS) - 1, True, downgrade))
    new_plan = market.plans_of_tier(tier + np.where(downgrade, -1, 1), gen.random(n))
    return np.where(changes, day, NEVER), np.where(changes, new_plan, people.plan)
