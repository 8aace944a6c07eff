"""Qini curves and the effect interval on small randomised experiments with a known answer."""
from __future__ import annotations

import numpy as np

from ml.uplift.qini import effect_interval, qini_curve


def _experiment(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half treated at random; a contact keeps half the would-be churners of group 1 and none of group 0."""
    rng = np.random.default_rng(seed)
    group, treated = rng.random(n) < 0.5, rng.random(n) < 0.5
    churned = (rng.random(n) < 0.2) & ~(treated & group & (rng.random(n) < 0.5))
    return group, treated, churned


def test_ranking_the_responsive_first_has_a_positive_qini():
    group, treated, churned = _experiment()
    assert qini_curve(group.astype(float), treated, churned).coefficient > 0.005


def test_ranking_the_responsive_last_has_a_negative_qini():
    group, treated, churned = _experiment()
    assert qini_curve(-group.astype(float), treated, churned).coefficient < -0.005


def test_a_random_ranking_has_a_qini_near_zero():
    group, treated, churned = _experiment()
    score = np.random.default_rng(1).random(len(group))
    assert abs(qini_curve(score, treated, churned).coefficient) < 0.003


def test_the_curve_ends_at_the_campaign_wide_saving():
    group, treated, churned = _experiment()
    curve = qini_curve(group.astype(float), treated, churned)
    overall = churned[~treated].mean() * treated.sum() - churned[treated].sum()
    assert curve.saved[0] == 0
    assert abs(curve.saved[-1] - overall) < 1e-6


def test_the_effect_interval_covers_the_true_average_drop():
    _, treated, churned = _experiment(200_000)
    drop, low, high = effect_interval(treated, churned)
    assert low < 0.2 * 0.5 * 0.5 < high and low < drop < high


def test_the_effect_interval_is_undefined_without_a_control_group():
    _, low, high = effect_interval(np.ones(10, bool), np.zeros(10, bool))
    assert np.isnan(low) and np.isnan(high)
