"""Qini curves on a randomised experiment: how many churners a ranking saves as it targets deeper.

For the top ``k`` customers of a ranking (treated and control together), the incremental churners
saved among the treated are ``churners_c(k) x treated(k) / control(k) - churners_t(k)``: the
control group's churn rate at that depth applied to the treated, minus what they did. A random
ranking saves in proportion to depth (the straight line to the last point). The Qini coefficient
is the mean gap between the curve and that line over all depths, per treated customer: positive
when the ranking puts the customers a contact keeps first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QiniCurve:
    depth: np.ndarray
    """Share of the customers targeted, from 0 to 1."""
    saved: np.ndarray
    """Incremental churners saved among the treated targeted at that depth."""
    treated: int

    @property
    def random(self) -> np.ndarray:
        return self.depth * self.saved[-1]

    @property
    def coefficient(self) -> float:
        """Mean (curve - random line) per treated customer."""
        return float(np.mean(self.saved - self.random) / self.treated) if self.treated else 0.0

    @property
    def auuc(self) -> float:
        """Mean of the curve itself per treated customer (area under the uplift curve)."""
        return float(np.mean(self.saved) / self.treated) if self.treated else 0.0


def qini_curve(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> QiniCurve:
    """The curve of ranking by ``score`` (highest first), at every depth (ties broken by order)."""
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    t, y = np.asarray(treated, bool)[order], np.asarray(churned, bool)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    churn_t, churn_c = np.cumsum(t & y), np.cumsum(~t & y)
    expected = np.divide(churn_c * n_t, n_c, out=np.zeros(len(t)), where=n_c > 0)
    saved = np.concatenate([[0.0], expected - churn_t])
    depth = np.arange(len(t) + 1) / max(len(t), 1)
    return QiniCurve(depth, saved, int(t.sum()))


def effect_interval(treated: np.ndarray, churned: np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """Churn-rate difference control - treated (the average reduction a contact makes) and its
    normal-approximation confidence interval."""
    t, y = np.asarray(treated, bool), np.asarray(churned, bool)
    n_t, n_c = int(t.sum()), int((~t).sum())
    if n_t == 0 or n_c == 0:
        return 0.0, float("nan"), float("nan")
    p_t, p_c = y[t].mean(), y[~t].mean()
    se = np.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    diff = float(p_c - p_t)
    return diff, diff - z * float(se), diff + z * float(se)
