"""Drift between a reference and a current sample of customers: per feature PSI (bins from the
reference) and KS, missing-rate change, prediction drift and label drift, each graded ok / warn /
critical against the thresholds of ``DriftSettings``.

Bins: a feature with at most ``bins`` distinct reference values (counts, flags, category codes,
per-region values) gets one bin per value, split at the midpoints between them, so a small
move of a value does not change its bin; other features get the reference's quantiles. KS is
only computed for the latter: on a handful of point masses it measures where values sit, not
how much mass moved. Per-region context features (``context``) are graded at most
``settings.context_level``: their real sample is the handful of regions, not the customers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from core.settings import DriftSettings

OK, WARN, CRITICAL = "ok", "warn", "critical"
LEVELS = (OK, WARN, CRITICAL)
EXIT_CODES = {OK: 0, WARN: 1, CRITICAL: 2}
_FLOOR = 1e-4
"""Smallest bin share in PSI: an empty bin would make it infinite."""


def grade(value: float | None, warn: float, critical: float) -> str:
    if value is None or value < warn:
        return OK
    return CRITICAL if value >= critical else WARN


def worst(*levels: str) -> str:
    return max(levels, key=LEVELS.index, default=OK)


def bin_edges(reference: np.ndarray, bins: int) -> tuple[np.ndarray, bool]:
    """Inner bin edges from the reference's non-missing values, and whether it is discrete."""
    distinct = np.unique(reference)
    if distinct.size <= bins:
        return (distinct[:-1] + distinct[1:]) / 2, True
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])), False


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return counts / max(values.size, 1)


def psi(reference: np.ndarray, current: np.ndarray, edges: np.ndarray) -> float:
    """Population stability index of ``current`` against ``reference`` over the given bins."""
    r = np.clip(shares(reference, edges), _FLOOR, None)
    c = np.clip(shares(current, edges), _FLOOR, None)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference: np.ndarray, current: np.ndarray) -> float:
    return float(stats.ks_2samp(reference, current).statistic)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks: float | None
    discrete: bool
    missing_reference: float
    missing_current: float
    mean_reference: float | None
    mean_current: float | None
    level: str
    context: bool = False

    @property
    def missing_change(self) -> float:
        return self.missing_current - self.missing_reference


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def feature_drift(name: str, reference: np.ndarray, current: np.ndarray, settings: DriftSettings,
                  context: bool = False) -> FeatureDrift:
    ref_ok, cur_ok = reference[~np.isnan(reference)], current[~np.isnan(current)]
    missing_ref, missing_cur = 1 - ref_ok.size / max(reference.size, 1), 1 - cur_ok.size / max(current.size, 1)
    if ref_ok.size and cur_ok.size:
        edges, discrete = bin_edges(ref_ok, settings.bins)
        value_psi, value_ks = psi(ref_ok, cur_ok, edges), None if discrete else ks(ref_ok, cur_ok)
    else:
        value_psi, value_ks, discrete = 0.0, None, True
    level = worst(grade(value_psi, settings.psi_warn, settings.psi_critical),
                  grade(value_ks, settings.ks_warn, settings.ks_critical),
                  grade(abs(missing_cur - missing_ref), settings.missing_warn, settings.missing_critical))
    if context:
        level = min(level, settings.context_level, key=LEVELS.index)
    return FeatureDrift(name, value_psi, value_ks, discrete, missing_ref, missing_cur, _mean(ref_ok),
                        _mean(cur_ok), level, context)


@dataclass(frozen=True)
class PredictionDrift:
    psi: float
    ks: float
    mean_reference: float
    mean_current: float
    level: str


def prediction_drift(reference: np.ndarray, current: np.ndarray, settings: DriftSettings) -> PredictionDrift:
    edges, _ = bin_edges(reference, settings.bins)
    value_psi, value_ks = psi(reference, current, edges), ks(reference, current)
    level = worst(grade(value_psi, settings.psi_warn, settings.psi_critical),
                  grade(value_ks, settings.ks_warn, settings.ks_critical))
    return PredictionDrift(value_psi, value_ks, float(reference.mean()), float(current.mean()), level)


@dataclass(frozen=True)
class LabelDrift:
    rate_reference: float
    rate_current: float
    relative_change: float
    level: str


def label_drift(reference: np.ndarray, current: np.ndarray, settings: DriftSettings) -> LabelDrift:
    r, c = float(reference.mean()), float(current.mean())
    change = abs(c - r) / r if r else float(c > 0)
    return LabelDrift(r, c, change, grade(change, settings.label_warn, settings.label_critical))


@dataclass
class DriftResult:
    reference: str
    current: str
    rows: dict[str, int]
    features: list[FeatureDrift]
    """Most drifted first: by level, then PSI, then KS."""
    prediction: PredictionDrift | None = None
    label: LabelDrift | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        parts = [f.level for f in self.features] + [p.level for p in (self.prediction, self.label) if p]
        return worst(*parts)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def counts(self) -> dict[str, int]:
        return {level: sum(f.level == level for f in self.features) for level in LEVELS}

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "current": self.current, "rows": self.rows, "status": self.status,
                "feature_levels": self.counts(),
                "features": [{**asdict(f), "missing_change": f.missing_change} for f in self.features],
                "prediction": asdict(self.prediction) if self.prediction else None,
                "label": asdict(self.label) if self.label else None, "notes": self.notes}


def compare_features(reference: dict[str, np.ndarray], current: dict[str, np.ndarray], names: list[str],
                     settings: DriftSettings, context: frozenset[str] = frozenset()) -> list[FeatureDrift]:
    """Drift of every named feature, most drifted first (by level, then PSI, then KS)."""
    drifts = [feature_drift(n, reference[n], current[n], settings, n in context) for n in names]
    return sorted(drifts, key=lambda d: (-LEVELS.index(d.level), -d.psi, -(d.ks or 0.0), d.feature))
