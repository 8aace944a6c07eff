"""Risk segments: tiers by probability (or by quantile of a scored population)."""
from __future__ import annotations

import numpy as np

from core.settings import SegmentSettings


def tier_bounds(settings: SegmentSettings, population: np.ndarray | None = None) -> list[tuple[str, float]]:
    """(tier, lower probability bound), highest tier first. With ``by_quantile`` the configured
    bounds are quantiles of ``population`` (so, e.g., the top 5% are critical)."""
    tiers = sorted(settings.tiers.items(), key=lambda kv: -kv[1])
    if not settings.by_quantile:
        return tiers
    if population is None or population.size == 0:
        raise ValueError("quantile tiers need the scored population")
    return [(name, float(np.quantile(population, q)) if q > 0 else 0.0) for name, q in tiers]


def assign(proba: np.ndarray, bounds: list[tuple[str, float]]) -> np.ndarray:
    """Tier name per probability (vectorised)."""
    names = np.array([name for name, _ in bounds] + [bounds[-1][0]], dtype=object)
    lows = np.array([low for _, low in bounds])
    # index of the first bound (highest first) that the probability reaches
    reached = proba[:, None] >= lows[None, :]
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), len(bounds) - 1)
    return names[first]
