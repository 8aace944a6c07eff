"""What every stream builder of a shard needs: its customers, their behaviour, the market, the
drift and a seeded generator per stream, with the common vectorised look-ups."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from simulator.behaviour import Behaviour
from simulator.drift import Drift, Effect
from simulator.events import daily_events, seconds_of_day
from simulator.market import Market
from simulator.population import Population
from simulator.randomness import rng
from simulator.schema import ids
from simulator.window import Window


@dataclass(frozen=True)
class ShardContext:
    seed: int
    shard: int
    window: Window
    drift: Drift
    market: Market
    people: Population
    behaviour: Behaviour

    @property
    def n(self) -> int:
        return self.people.n

    def rng(self, purpose: str) -> np.random.Generator:
        return rng(self.seed, purpose, self.shard)

    def daily_rate(self, per_day: np.ndarray | float) -> np.ndarray:
        """[customer, day] rate: a per-customer daily rate on active days, zero otherwise."""
        return np.broadcast_to(np.asarray(per_day, float), (self.n,))[:, None] * self.behaviour.active

    def factor(self, effect: Effect, customer: np.ndarray | None = None, day: np.ndarray | None = None) -> np.ndarray:
        """Drift multiplier per (customer, day) event, or as a [customer, day] matrix without them."""
        if customer is None:
            return self.drift.factor(effect, self.people.region[:, None], np.arange(self.window.days)[None, :])
        assert day is not None
        return self.drift.factor(effect, self.people.region[customer], day)

    def events(self, rate: np.ndarray, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Poisson events from a [customer, day] rate: customer, day and timestamp[us] of each."""
        customer, day = daily_events(rate, gen)
        return customer, day, self.window.timestamps(day, seconds_of_day(gen, len(day)))

    def alive(self, customer: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """Whether follow-up events (payments, resolutions...) fall in the window and customer's life."""
        day = self.window.day_of(t_us)
        return (day < self.window.days) & (day <= self.people.churn_day[customer])

    def customer_ids(self, customer: np.ndarray) -> pa.Array:
        return self.people.customer_id.take(pa.array(customer, pa.int64()))

    def event_ids(self, prefix: str, n: int) -> pa.Array:
        """Ids unique across shards: prefix, shard, sequence."""
        return ids(f"{prefix}{self.shard:05d}-", np.arange(n), 8)
