"""The generator's retention campaigns on a small population (no Ray, no files): who a contact
keeps follows the response model, control groups are untouched, and a campaign planned by the
platform runs in the same world without disturbing the past ones."""
from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from features.sources import ARMS, CONTROL, INTERVENTIONS
from simulator import AppliedCampaign
from simulator.drift import Drift
from simulator.market import build_market
from simulator.population import NEVER, build_population
from simulator.randomness import rng
from simulator.retention import OUTCOME_DAYS, campaign_days, contact_rows, run_campaigns
from simulator.truth import responses
from simulator.window import Window

WINDOW = Window(date(2026, 4, 1), 120)
APPLIED_DAY = 89


@pytest.fixture(scope="module")
def world():
    market = build_market(3, WINDOW)
    people = build_population(0, 4_000, WINDOW, market, Drift.resolve(None, None, WINDOW), rng(3, "population"))
    _, keeps = responses(people, rng(3, "truth"))
    return people, keeps


def _kept_by(keeps, arm: np.ndarray, customer: np.ndarray) -> np.ndarray:
    matrix = np.column_stack([keeps[k] for k in INTERVENTIONS])
    return (arm != ARMS.index(CONTROL)) & matrix[customer, np.maximum(arm - 1, 0)]


def _applied(people, seed: int = 0) -> AppliedCampaign:
    gen = np.random.default_rng(seed)
    listed = np.sort(gen.choice(people.n, 800, replace=False))
    return AppliedCampaign("CAMPAIGN-X", APPLIED_DAY, people.customer_id.take(pa.array(listed)),
                           gen.integers(0, len(ARMS), listed.size))


def test_a_past_contact_keeps_exactly_the_would_be_churners_the_response_model_keeps(world):
    people, keeps = world
    campaigns, churn = run_campaigns(people, WINDOW, keeps, rng(3, "retention"))
    c = campaigns
    original = people.churn_day[c.customer]
    would_churn = (original > c.day) & (original <= c.day + OUTCOME_DAYS)
    assert c.customer.size > 0 and set(np.unique(c.day)) == set(campaign_days(WINDOW))
    np.testing.assert_array_equal(c.kept, would_churn & _kept_by(keeps, c.arm, c.customer))
    assert (churn[c.customer[c.kept]] == NEVER).all()


def test_the_control_group_and_the_untargeted_churn_as_they_would_have(world):
    people, keeps = world
    campaigns, churn = run_campaigns(people, WINDOW, keeps, rng(3, "retention"))
    kept = np.zeros(people.n, bool)
    kept[campaigns.customer[campaigns.kept]] = True
    np.testing.assert_array_equal(churn[~kept], people.churn_day[~kept])


def test_an_applied_campaign_keeps_its_treated_would_be_churners_only(world):
    people, keeps = world
    applied = _applied(people)
    campaigns, churn = run_campaigns(people, WINDOW, keeps, rng(3, "retention"), applied)
    last = campaigns.campaign == len(campaign_days(WINDOW))
    c_who, c_arm, c_kept = campaigns.customer[last], campaigns.arm[last], campaigns.kept[last]
    _, churn_before = run_campaigns(people, WINDOW, keeps, rng(3, "retention"))
    would_churn = (churn_before[c_who] > APPLIED_DAY) & (churn_before[c_who] <= APPLIED_DAY + OUTCOME_DAYS)
    assert c_kept.any()
    np.testing.assert_array_equal(c_kept, would_churn & _kept_by(keeps, c_arm, c_who))
    untouched = np.ones(people.n, bool)
    untouched[c_who[c_kept]] = False
    np.testing.assert_array_equal(churn[untouched], churn_before[untouched])


def test_an_applied_campaign_leaves_the_past_campaigns_as_they_were(world):
    people, keeps = world
    without, _ = run_campaigns(people, WINDOW, keeps, rng(3, "retention"))
    with_it, _ = run_campaigns(people, WINDOW, keeps, rng(3, "retention"), _applied(people))
    past = with_it.campaign < len(campaign_days(WINDOW))
    for field in ("customer", "campaign", "day", "arm", "kept"):
        np.testing.assert_array_equal(getattr(with_it, field)[past], getattr(without, field))


def test_an_applied_campaign_is_recorded_under_its_id_with_its_arms(world):
    people, keeps = world
    applied = _applied(people)
    campaigns, _ = run_campaigns(people, WINDOW, keeps, rng(3, "retention"), applied)
    rows = contact_rows(people, WINDOW, campaigns, 0).table.to_pandas()
    recorded = rows[rows["campaign_id"] == "CAMPAIGN-X"].set_index("customer_id")
    planned = dict(zip(applied.customer_id.to_pylist(), np.array(ARMS)[applied.arm], strict=True))
    assert len(recorded) > 0 and (recorded["arm"] == recorded.index.map(planned)).all()
    assert set(rows["campaign_id"]) == {f"RET{i:03d}" for i in range(len(campaign_days(WINDOW)))} | {"CAMPAIGN-X"}
