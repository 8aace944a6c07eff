"""A campaign's effect against its control group, on hand-made arms (no Ray, no files)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.campaigns.measurement import arm_effect, report


def _listed(n: int, value: float = 100.0, cost: float = 8.0) -> pd.DataFrame:
    return pd.DataFrame({"customer_value": np.full(n, value), "cost": np.full(n, cost)})


def test_the_drop_saved_churners_cost_and_roi_follow_from_the_two_arms():
    # 1,000 contacted with 10% churn, 1,000 in control with 20%: 100 saved for 8,000
    treated = np.r_[np.ones(1_000, bool), np.zeros(1_000, bool)]
    churned = np.r_[np.arange(1_000) < 100, np.arange(1_000) < 200]
    listed = _listed(2_000)
    listed.loc[~treated, "cost"] = 0.0
    effect = arm_effect(treated, churned, listed)
    assert np.isclose(effect["churn_drop"]["estimate"], 0.1)
    assert effect["churn_drop"]["low"] < 0.1 < effect["churn_drop"]["high"]
    assert np.isclose(effect["churners_saved"]["estimate"], 100.0)
    assert effect["cost"] == 8_000.0 and np.isclose(effect["cost_per_churner_saved"], 80.0)
    assert np.isclose(effect["saved_revenue"], 10_000.0) and np.isclose(effect["roi"], 0.25)


def test_an_arm_without_control_customers_has_no_estimate():
    effect = arm_effect(np.ones(5, bool), np.zeros(5, bool), _listed(5))
    assert effect["churn_drop"] == {"estimate": None, "low": None, "high": None}
    assert effect["control"] == 0 and effect["cost_per_churner_saved"] is None


def test_the_report_leads_with_the_contrast_and_lists_each_intervention():
    treated = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    churned = np.r_[np.arange(50) < 5, np.arange(50) < 10]
    overall = arm_effect(treated, churned, _listed(100))
    text = report({"campaign": "C1", "as_of": "2026-06-30", "window": ["2026-07-01", "2026-07-30"],
                   "outcome_snapshot": "S1", "listed": 100, "not_found": 0, "customers": 100, "churners": 15,
                   "overall": overall, "by_intervention": {"call": overall},
                   "churn_reduction": {"estimate": 0.25, "low": 0.0, "high": 0.5}})
    lines = text.splitlines()
    assert lines[0].startswith("# Campaign C1") and "10.0%** contacted vs **20.0%** control" in text
    assert any(line.startswith("| call |") for line in lines) and "![effect](effect.png)" in text
