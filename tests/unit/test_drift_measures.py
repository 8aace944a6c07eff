"""Drift statistics (no snapshot store, no MLflow): PSI and its binning, grading and exit codes,
detection and ranking of shifted features, no alarm between two samples of the same process,
context features, missing-rate and label-rate changes."""
from __future__ import annotations

import numpy as np
import pytest

from core.settings import DriftSettings
from ml.drift import measures

from support import shifted_customers, synthetic_customers

SETTINGS = DriftSettings()


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 50_000)
    edges, discrete = measures.bin_edges(ref, 10)
    assert not discrete and edges.size == 9
    assert measures.psi(ref, ref, edges) == 0.0
    small, large = (measures.psi(ref, rng.normal(shift, 1, 50_000), edges) for shift in (0.1, 0.6))
    assert small < SETTINGS.psi_warn < SETTINGS.psi_critical < large


def test_discrete_features_are_binned_per_value_so_a_small_move_is_not_drift():
    """Per-region values (five point masses): a 2% move of every value keeps every bin."""
    ref = np.repeat([35.0, 38.0, 40.0, 62.0, 70.0], 1_000)
    edges, discrete = measures.bin_edges(ref, 10)
    assert discrete and edges.tolist() == [36.5, 39.0, 51.0, 66.0]
    assert measures.psi(ref, ref * 1.02, edges) == 0.0
    assert measures.psi(ref, np.where(ref == 70.0, 35.0, ref), edges) > SETTINGS.psi_critical


def test_a_value_is_graded_against_the_warn_and_critical_thresholds():
    assert [measures.grade(v, 0.1, 0.25) for v in (None, 0.05, 0.1, 0.3)] == ["ok", "ok", "warn", "critical"]


def test_the_worst_level_wins_and_nothing_is_ok():
    assert measures.worst("ok", "critical", "warn") == "critical" and measures.worst() == "ok"


def test_exit_codes_are_0_1_2_for_ok_warn_critical():
    assert measures.EXIT_CODES == {"ok": 0, "warn": 1, "critical": 2}


def _columns(frame, names) -> dict[str, np.ndarray]:
    return {n: frame[n].to_numpy("float64") for n in names}


def test_shifted_features_are_flagged_and_rank_first():
    reference, features = synthetic_customers(4_000, seed=0)
    current, _ = shifted_customers(1)
    result = measures.compare_features(_columns(reference, features.names), _columns(current, features.names),
                                       features.names, SETTINGS)
    assert {d.feature for d in result[:2]} == {"tickets_30d", "monthly_price"}
    assert all(d.level == "critical" for d in result[:2]) and all(d.level == "ok" for d in result[2:])


def test_two_samples_of_the_same_process_raise_no_alarm():
    reference, features = synthetic_customers(4_000, seed=0)
    current, _ = synthetic_customers(4_000, seed=1)
    result = measures.compare_features(_columns(reference, features.names), _columns(current, features.names),
                                       features.names, SETTINGS)
    assert all(d.level == "ok" for d in result), [(d.feature, d.psi, d.ks) for d in result]


def test_region_context_features_are_capped_at_the_context_level():
    ref = np.repeat([35.0, 38.0, 40.0, 62.0, 70.0], 1_000)
    moved = np.where(ref == 38.0, 41.0, ref)  # one region's weekly value crosses a bin
    assert measures.feature_drift("latency", ref, moved, SETTINGS).level == "critical"
    capped = measures.feature_drift("latency", ref, moved, SETTINGS, context=True)
    assert capped.level == SETTINGS.context_level == "warn"


def test_a_missing_rate_change_is_graded_even_without_a_psi_shift():
    reference, _ = synthetic_customers(4_000, seed=0)
    current, _ = synthetic_customers(4_000, seed=1)
    current.loc[current.index[::4], "monthly_price"] = np.nan  # 25% missing now
    price = measures.feature_drift("monthly_price", reference["monthly_price"].to_numpy("float64"),
                                   current["monthly_price"].to_numpy("float64"), SETTINGS)
    assert price.missing_change == pytest.approx(0.25) and price.level == "critical" and price.psi < SETTINGS.psi_warn


def test_a_label_rate_change_is_graded_by_its_relative_change():
    label = measures.label_drift(np.r_[np.ones(100), np.zeros(900)], np.r_[np.ones(160), np.zeros(840)], SETTINGS)
    assert label.relative_change == pytest.approx(0.6) and label.level == "critical"
