"""Drift scenarios: a change in the business from a given day, in some regions.

A scenario is a set of multiplicative effects (neutral value 1.0) that the streams and the churn
process look up per (region, day) with ``Drift.factor``; outside the scenario's regions and days
every factor is 1.0, so builders never branch on the scenario.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Literal

import numpy as np

from features.sources import REGIONS
from simulator.window import Window

Effect = Literal[
    "hazard", "invoice_amount", "price_complaints", "cancel_visits", "competitor_offers",
    "competitor_discount", "app_sessions", "app_crashes", "device_tickets",
]


@dataclass(frozen=True)
class Effects:
    hazard: float = 1.0
    invoice_amount: float = 1.0
    price_complaints: float = 1.0
    cancel_visits: float = 1.0
    competitor_offers: float = 1.0
    competitor_discount: float = 1.0
    app_sessions: float = 1.0
    app_crashes: float = 1.0
    device_tickets: float = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    regions: tuple[str, ...]
    sources: tuple[str, ...]
    """The sources whose rows the scenario changes directly (beyond churn itself)."""
    effects: Effects
    duration_days: int | None = None
    """None: lasts to the end of the simulation."""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "price_increase", "Invoices +25% in the east, with price complaints and churn following",
            regions=("east",), sources=("billing_invoices", "payments", "complaints", "subscriptions"),
            effects=Effects(hazard=2.0, invoice_amount=1.25, price_complaints=5.0),
        ),
        Scenario(
            "competitor_offer", "A rival's deep discounts in the south pull customers to the cancel page",
            regions=("south",), sources=("competitor_offers", "web_visits", "subscriptions"),
            effects=Effects(hazard=2.5, cancel_visits=4.0, competitor_offers=3.0, competitor_discount=2.5),
        ),
        Scenario(
            "app_outage", "A week of app crashes everywhere: fewer sessions, device and network tickets",
            regions=REGIONS, sources=("app_sessions", "support_tickets"),
            effects=Effects(hazard=1.3, app_sessions=0.4, app_crashes=20.0, device_tickets=4.0),
            duration_days=7,
        ),
    )
}


@dataclass(frozen=True)
class Drift:
    """A scenario placed in time; ``Drift.none(...)`` is the neutral, no-drift business."""

    scenario: Scenario | None
    start_day: int
    mask: np.ndarray
    """bool [region, day] over the simulation horizon: where the scenario is in force."""

    @classmethod
    def none(cls, window: Window) -> Drift:
        return cls(None, window.days, np.zeros((len(REGIONS), window.horizon), dtype=bool))

    @classmethod
    def resolve(cls, name: str | None, start: date | None, window: Window) -> Drift:
        """The named scenario from ``start`` (default: two thirds into the window)."""
        if name is None:
            if start is not None:
                raise ValueError("a drift start needs a drift scenario")
            return cls.none(window)
        if name not in SCENARIOS:
            raise ValueError(f"unknown drift scenario {name!r}; valid: {', '.join(sorted(SCENARIOS))}")
        scenario = SCENARIOS[name]
        start_day = window.days * 2 // 3 if start is None else (start - window.start).days
        if not 0 <= start_day < window.days:
            raise ValueError(f"drift start {window.date(start_day)} is outside {window.start}..{window.end}")
        end_day = window.horizon if scenario.duration_days is None else start_day + scenario.duration_days
        mask = np.zeros((len(REGIONS), window.horizon), dtype=bool)
        mask[[REGIONS.index(r) for r in scenario.regions], start_day:end_day] = True
        return cls(scenario, start_day, mask)

    def factor(self, effect: Effect, region: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The effect's multiplier where (region, day) is under the scenario, else 1.0 (broadcasts)."""
        value = getattr(self.scenario.effects, effect) if self.scenario else 1.0
        return np.where(self.mask[region, day], value, 1.0)

    def describe(self, window: Window) -> dict[str, Any] | None:
        if self.scenario is None:
            return None
        s = self.scenario
        end = None if s.duration_days is None else window.date(min(self.start_day + s.duration_days, window.days) - 1)
        effects = {f.name: getattr(s.effects, f.name) for f in fields(Effects) if getattr(s.effects, f.name) != 1.0}
        return {
            "scenario": s.name, "description": s.description, "start": window.date(self.start_day).isoformat(),
            "end": end.isoformat() if end else None, "regions": list(s.regions), "sources": list(s.sources),
            "effects": effects,
        }
