"""Per-feature statistics of a snapshot, computed in Ray Data from the Spark hand-off.

Stored in the snapshot manifest: they show what a snapshot holds at a glance and are the
reference distribution that drift reports compare against.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from ray.data import Dataset

_SAMPLE_PER_BATCH = 2_000
_QUANTILES = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]


def _batch_stats(batch: dict[str, np.ndarray], columns: list[str]) -> dict[str, Any]:
    rng = np.random.default_rng(len(batch[columns[0]]))
    n = len(batch[columns[0]])
    pick = rng.choice(n, size=min(n, _SAMPLE_PER_BATCH), replace=False) if n else np.array([], dtype=int)
    out: dict[str, Any] = {"rows": np.array([n])}
    for c in columns:
        v = batch[c].astype("float64")
        ok = v[~np.isnan(v)]
        out[f"{c}|n"] = np.array([ok.size])
        out[f"{c}|sum"] = np.array([ok.sum()])
        out[f"{c}|sq"] = np.array([(ok ** 2).sum()])
        out[f"{c}|min"] = np.array([ok.min() if ok.size else np.inf])
        out[f"{c}|max"] = np.array([ok.max() if ok.size else -np.inf])
        out[f"{c}|sample"] = np.array([v[pick]], dtype=object)
    return out


def profile(ds: Dataset, columns: list[str]) -> dict[str, dict[str, Any]]:
    """count, missing rate, mean, std, min, max and quantiles (from a sample) per column."""
    parts = ds.map_batches(cast("Callable[[Any], Any]", _batch_stats), fn_kwargs={"columns": columns},
                           batch_format="numpy", batch_size=100_000).take_all()
    rows = sum(int(p["rows"]) for p in parts)
    result = {}
    for c in columns:
        n = sum(int(p[f"{c}|n"]) for p in parts)
        total = sum(float(p[f"{c}|sum"]) for p in parts)
        sq = sum(float(p[f"{c}|sq"]) for p in parts)
        samples = [np.asarray(p[f"{c}|sample"], dtype="float64") for p in parts]
        sample = np.concatenate(samples) if samples else np.array([])
        sample = sample[~np.isnan(sample)]
        mean = total / n if n else None
        result[c] = {
            "count": n,
            "missing_rate": (rows - n) / rows if rows else 0.0,
            "mean": mean,
            "std": float(np.sqrt(max(sq / n - mean ** 2, 0.0))) if mean is not None else None,
            "min": min(float(p[f"{c}|min"]) for p in parts) if n else None,
            "max": max(float(p[f"{c}|max"]) for p in parts) if n else None,
            "quantiles": dict(zip(map(str, _QUANTILES), np.quantile(sample, _QUANTILES).tolist()))
            if sample.size else {},
        }
    return result
