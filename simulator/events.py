"""Vectorised samplers for event streams: who does something on which day, at what time."""
from __future__ import annotations

import numpy as np

DAY_SECONDS = 86_400


def daily_events(rate: np.ndarray, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Poisson events from a [customer, day] rate matrix: (customer, day) per event, sorted."""
    counts = gen.poisson(rate)
    cells = np.flatnonzero(counts)
    cells = np.repeat(cells, counts.ravel()[cells])
    customer, day = np.divmod(cells, rate.shape[1])
    return customer, day


def seconds_of_day(gen: np.random.Generator, n: int, first_hour: int = 7, last_hour: int = 23) -> np.ndarray:
    """Waking-hours times of day, in seconds after midnight."""
    return gen.integers(first_hour * 3_600, last_hour * 3_600, n)


def choose(gen: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One category per row of a [row, category] probability matrix (rows need not be normalised)."""
    cum = np.cumsum(p, axis=1)
    u = gen.random(len(p)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), p.shape[1] - 1)


def later(gen: np.random.Generator, t_us: np.ndarray, median_hours: float, spread: float = 0.8) -> np.ndarray:
    """Follow-up times (a ticket's resolution, a touch's response): a lognormal delay after ``t_us``."""
    delay_s = np.exp(gen.normal(np.log(median_hours * 3_600), spread, len(t_us)))
    return t_us + (delay_s.astype(np.int64) * 1_000_000)
