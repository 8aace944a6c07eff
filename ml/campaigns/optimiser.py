"""Choosing who gets which retention intervention within a budget, and what that is worth.

The *effect* of giving customer i intervention j is the expected drop in their churn probability:
the uplift model's learnt drop, or ``p_i x success_j`` with the catalogue's fixed success rates
(``fixed_rate_effects``). The expected net value is ``value_i x effect_ij - cost_j``. Choosing at most one
intervention per customer to maximise the total within a budget is a multiple-choice knapsack;
it is solved greedily by value per cost (an intervention a customer is not eligible for, e.g. an
e-mail without marketing consent, has value -inf and is never chosen):

1. For each customer, walk the upper concave hull of (cost, value) of its options from "no
   contact": each step is an *upgrade* (to a dearer option) with a value-per-cost ratio, and a
   customer's ratios decrease along its chain. Options of no positive value are never reached.
2. Take upgrades in decreasing ratio over all customers while they fit the budget (this prefix is
   the optimum of the LP relaxation, up to the first upgrade that does not fit).
3. Fill what is left: keep taking, in the same order, each customer's next upgrade that fits.
4. Keep the better, by expected value, of this plan and the top-k-by-probability plans.

Guarantees (tested): the budget is never exceeded; at most one intervention per customer; the
expected value is at least that of every top-k-by-probability plan at the same budget (step 4)
and at least the LP optimum minus the value of one upgrade, which bounds random targeting's
expected value (a fractional plan) the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.settings import InterventionSettings
from ml.value import net_value

NO_CONTACT = -1
NET_VALUE, CHURNERS_SAVED = "net_value", "churners_saved"
"""What a plan maximises: expected net value (profit first), or expected churners saved within
the budget (retention first: every contact that lowers churn is worth buying, best drop per cost first)."""


@dataclass(frozen=True)
class Catalogue:
    names: tuple[str, ...]
    cost: np.ndarray
    success: np.ndarray
    eligible_if: tuple[str | None, ...]

    @classmethod
    def from_settings(cls, settings: InterventionSettings) -> Catalogue:
        items = list(settings.catalogue.values())
        return cls(tuple(settings.catalogue), np.array([i.cost for i in items]),
                   np.array([i.success_rate for i in items]), tuple(i.eligible_if for i in items))


def fixed_rate_effects(proba: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """(customers x interventions) drop in churn probability if every contact keeps the catalogue's
    share of would-be churners, whoever the customer."""
    return proba.astype(np.float64)[:, None] * catalogue.success[None, :]


def expected_values(effect: np.ndarray, value: np.ndarray, catalogue: Catalogue,
                    eligible: np.ndarray | None = None) -> np.ndarray:
    """(customers x interventions) expected net value of each contact; -inf where the customer
    is not eligible (``eligible``: same shape, bool)."""
    ev = net_value(effect, value[:, None], catalogue.cost[None, :])
    return ev if eligible is None else np.where(eligible, ev, -np.inf)


def best_actions(ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's next best action without a budget: the intervention of highest positive
    expected net value (``NO_CONTACT`` when none is worth its cost), and that value (0 for none)."""
    best = ev.argmax(axis=1) if ev.shape[1] else np.zeros(len(ev), dtype=np.int64)
    value = ev[np.arange(len(ev)), best] if ev.shape[1] else np.zeros(len(ev))
    worth = value > 0
    return np.where(worth, best, NO_CONTACT), np.where(worth, value, 0.0)


@dataclass(frozen=True)
class Upgrades:
    """Every customer's hull chain, flattened: upgrade ``step`` of ``customer`` goes to option ``to``."""

    customer: np.ndarray
    step: np.ndarray
    to: np.ndarray
    cost: np.ndarray
    """Extra cost over the previous step."""
    ratio: np.ndarray


def hull_upgrades(ev: np.ndarray, cost: np.ndarray) -> Upgrades:
    n, m = ev.shape
    rows = np.arange(n)
    at_cost, at_value = np.zeros(n), np.zeros(n)
    last_ratio = np.full(n, np.inf)
    active = np.ones(n, dtype=bool)
    parts: list[tuple[np.ndarray, ...]] = []
    for step in range(m):
        extra_cost = cost[None, :] - at_cost[:, None]
        gain = ev - at_value[:, None]
        ok = (extra_cost > 0) & (gain > 0) & active[:, None]
        ratio = np.where(ok, gain / np.where(ok, extra_cost, 1.0), -np.inf)
        best = ratio.argmax(axis=1)
        active = np.isfinite(ratio[rows, best])
        if not active.any():
            break
        who, to = rows[active], best[active]
        # equal in exact arithmetic along a hull; clamp float noise so a chain never rises
        r = np.minimum(ratio[who, to], last_ratio[who])
        parts.append((who, np.full(who.size, step), to, extra_cost[who, to], r))
        at_cost[who], at_value[who], last_ratio[who] = cost[to], ev[who, to], r
    if not parts:
        empty = np.array([], dtype=np.int64)
        return Upgrades(empty, empty, empty, np.array([]), np.array([]))
    return Upgrades(*(np.concatenate(column) for column in zip(*parts)))


def optimise(ev: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """Intervention index per customer (``NO_CONTACT`` for none) by the greedy of steps 1-3."""
    n, m = ev.shape
    up = hull_upgrades(ev, cost)
    # stable: equal ratios keep the (step, customer) order, so a chain's steps stay in order
    order = np.argsort(-up.ratio, kind="stable")
    chain_to = np.full((n, m), NO_CONTACT)
    chain_to[up.customer, up.step] = up.to
    last_step = np.full(n, -1)

    prefix = order[: np.searchsorted(np.cumsum(up.cost[order]), budget, side="right")]
    np.maximum.at(last_step, up.customer[prefix], up.step[prefix])
    left = budget - up.cost[prefix].sum()
    rest = order[prefix.size:]
    while rest.size:
        fits = (up.step[rest] == last_step[up.customer[rest]] + 1) & (up.cost[rest] <= left)
        candidates = rest[fits]
        if candidates.size == 0:
            break
        taken = candidates[np.cumsum(up.cost[candidates]) <= left]
        last_step[up.customer[taken]] = up.step[taken]
        left -= up.cost[taken].sum()
        rest = rest[up.cost[rest] <= left]
        rest = rest[up.step[rest] > last_step[up.customer[rest]]]

    choice = np.full(n, NO_CONTACT)
    chosen = last_step >= 0
    choice[chosen] = chain_to[chosen, last_step[chosen]]
    return choice


def top_k_plan(by_risk: np.ndarray, cost: np.ndarray, budget: float, intervention: int,
               eligible: np.ndarray | None = None) -> np.ndarray:
    """The most likely eligible churners (``by_risk``: customers by decreasing probability), as many
    as the budget pays for, all given one intervention."""
    ranked = by_risk if eligible is None else by_risk[eligible[by_risk]]
    choice = np.full(len(by_risk), NO_CONTACT)
    choice[ranked[: int(budget // cost[intervention])]] = intervention
    return choice


def plan_value(choice: np.ndarray, ev: np.ndarray) -> float:
    chosen = choice != NO_CONTACT
    return float(ev[chosen, choice[chosen]].sum())


def plan_cost(choice: np.ndarray, cost: np.ndarray) -> float:
    return float(cost[choice[choice != NO_CONTACT]].sum())


@dataclass(frozen=True)
class Selection:
    choice: np.ndarray
    strategy: str
    """"optimised", or the top-k plan kept because it was worth more (step 4)."""
    baselines: dict[str, np.ndarray]
    """top-k-by-probability plan per intervention."""


def objective_values(effect: np.ndarray, value: np.ndarray, catalogue: Catalogue, eligible: np.ndarray | None,
                     objective: str) -> np.ndarray:
    """(customers x interventions) what the knapsack maximises under ``objective``; -inf where
    the customer is not eligible."""
    if objective == NET_VALUE:
        return expected_values(effect, value, catalogue, eligible)
    if objective == CHURNERS_SAVED:
        return effect if eligible is None else np.where(eligible, effect, -np.inf)
    raise ValueError(f"unknown objective '{objective}': {NET_VALUE} or {CHURNERS_SAVED}")


def select(effect: np.ndarray, proba: np.ndarray, value: np.ndarray, catalogue: Catalogue, budget: float,
           eligible: np.ndarray | None = None, objective: str = NET_VALUE) -> Selection:
    """The best plan by ``effect`` within ``budget`` under ``objective``; the top-k plans rank by
    churn ``proba``."""
    ev = objective_values(effect, value, catalogue, eligible, objective)
    by_risk = np.argsort(-proba, kind="stable")
    baselines = {f"top_k_{name}": top_k_plan(by_risk, catalogue.cost, budget, j,
                                             None if eligible is None else eligible[:, j])
                 for j, name in enumerate(catalogue.names)}
    candidates = {"optimised": optimise(ev, catalogue.cost, budget), **baselines}
    best = max(candidates, key=lambda k: plan_value(candidates[k], ev))  # ties keep "optimised"
    return Selection(candidates[best], best, baselines)


def expected_outcome(choice: np.ndarray, effect: np.ndarray, value: np.ndarray,
                     catalogue: Catalogue) -> dict[str, Any]:
    """Contacts, cost, expected churners saved, saved revenue and net value of a plan."""
    chosen = np.flatnonzero(choice != NO_CONTACT)
    j = choice[chosen]
    saved = effect[chosen, j].astype(np.float64)
    revenue = float((saved * value[chosen]).sum())
    cost = float(catalogue.cost[j].sum())
    return {"contacted": int(chosen.size), "cost": cost, "expected_churners_saved": float(saved.sum()),
            "expected_saved_revenue": revenue, "expected_net_value": revenue - cost,
            "by_intervention": {name: int((j == k).sum()) for k, name in enumerate(catalogue.names)}}


def random_outcome(effect: np.ndarray, value: np.ndarray, catalogue: Catalogue, budget: float,
                   intervention: int, eligible: np.ndarray | None = None) -> dict[str, Any]:
    """Expected outcome of giving one intervention to as many random eligible customers as the
    budget pays for (the expectation over draws, so no sampling noise)."""
    drop = effect[:, intervention].astype(np.float64)
    if eligible is not None:
        drop, value = drop[eligible], value[eligible]
    n = len(drop)
    k = min(n, int(budget // catalogue.cost[intervention]))
    share = k / n if n else 0.0
    saved = share * float(drop.sum())
    revenue = share * float((drop * value).sum())
    cost = k * float(catalogue.cost[intervention])
    return {"contacted": k, "cost": cost, "expected_churners_saved": saved, "expected_saved_revenue": revenue,
            "expected_net_value": revenue - cost, "by_intervention": {catalogue.names[intervention]: k}}
