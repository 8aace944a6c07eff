"""A campaign planned on real batch scores (Ray, MLflow) against a ground truth: the target list,
its control group, budget and values, the baselines it beats, the realised churn reduction,
idempotency, and its measurement against the control group. The scores and the plan are made
once for the module."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.settings import CampaignSettings, InterventionSettings, Settings
from features.sources import CONTROL
from ml.campaigns.measurement import MeasurementError, measure_campaign, measurements_root
from ml.campaigns.optimiser import Catalogue
from ml.campaigns.planner import CampaignError, campaigns_root, plan_campaign
from ml.scoring import batch

from support import synthetic_customers, write_snapshot

pytestmark = pytest.mark.slow

CATALOGUE = Catalogue.from_settings(InterventionSettings())
BUDGET = 2_000.0


def _truth_for(snapshot, path) -> str:
    """A truth table for the snapshot: its labels are the churners, each intervention saves
    a churner with its catalogue success rate."""
    frame = snapshot.to_pandas()
    rng = np.random.default_rng(0)
    churn = np.where(frame["label"] == 1, pd.Timestamp("2026-07-15"), pd.NaT)
    columns = {"customer_id": frame["customer_id"], "churn_date": pd.to_datetime(churn).date}
    for name, item in InterventionSettings().catalogue.items():
        columns[f"saved_by_{name}"] = (frame["label"] == 1) & (rng.random(len(frame)) < item.success_rate)
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False), path)
    return str(path)


@pytest.fixture(scope="module")
def scores(ray_cluster, module_settings, module_champion):
    return batch.score_snapshot(module_settings)


@pytest.fixture(scope="module")
def truth(module_snapshot, tmp_path_factory) -> str:
    return _truth_for(module_snapshot, tmp_path_factory.mktemp("truth") / "truth.parquet")


@pytest.fixture(scope="module")
def campaign(module_settings, scores, truth):
    return plan_campaign(module_settings, BUDGET, truth_uri=truth)


@pytest.fixture(scope="module")
def targets(campaign):
    return campaign.read_targets()


@pytest.fixture(scope="module")
def summary(campaign):
    return campaign.summary


@pytest.fixture(scope="module")
def frame(module_snapshot):
    return module_snapshot.to_pandas().set_index("customer_id")


def test_campaign_targets_fit_the_budget_once_each(targets):
    assert targets["cost"].sum() <= BUDGET and targets["customer_id"].is_unique


def test_campaign_target_list_holds_every_contacted_customer(targets, summary):
    assert (targets["arm"] != CONTROL).sum() == summary["strategies"]["campaign"]["contacted"] > 0


def test_a_tenth_of_the_selected_are_kept_aside_as_the_control_group_at_no_cost(targets, summary):
    control = targets[targets["arm"] == CONTROL]
    assert len(control) >= round(InterventionSettings().control_share * len(targets)) > 0
    assert (control["cost"] == 0).all() and summary["control_group"]["customers"] == len(control)


def test_contacted_targets_get_the_intervention_they_were_chosen_for(targets):
    contacted = targets[targets["arm"] != CONTROL]
    assert (contacted["arm"] == contacted["intervention"]).all()


def test_without_an_uplift_model_the_plan_says_it_used_fixed_rates(summary):
    assert summary["basis"] == "fixed success rates" and summary["uplift_version"] is None
    assert any("fixed share" in note for note in summary["notes"])


def test_campaign_targets_are_ranked_by_positive_expected_net_value(targets):
    assert targets["expected_net_value"].is_monotonic_decreasing and (targets["expected_net_value"] > 0).all()


def test_campaign_targets_get_catalogue_interventions(targets):
    assert set(targets["intervention"]) <= set(CATALOGUE.names)


def test_the_optimised_plan_beats_the_best_top_k_and_random_baselines(summary):
    campaign = summary["strategies"]["fixed_rate"]["expected_net_value"]
    assert campaign >= summary["strategies"][summary["best_top_k"]]["expected_net_value"]
    assert campaign >= summary["strategies"][summary["best_random"]]["expected_net_value"]


def test_customer_value_is_monthly_price_times_value_months(targets, frame):
    # value: monthly price x months, the default only where the price is missing
    expected_value = frame.loc[targets["customer_id"], "monthly_price"].to_numpy() * CampaignSettings().value_months
    np.testing.assert_allclose(targets["customer_value"], expected_value, rtol=1e-6)


def test_realised_churners_are_the_snapshot_labels(summary, frame):
    assert summary["realised"]["campaign"]["churners"] == int(frame["label"].sum())


def test_campaign_saves_more_churners_than_the_best_random_plan(summary):
    r = summary["realised"]
    best_random = f"random_{summary['best_random'].removeprefix('random_')}"
    assert r["campaign"]["churn_reduction"] > r[best_random]["churn_reduction"]


def test_a_rerun_with_the_same_budget_reuses_the_plan(module_settings, campaign, truth):
    again = plan_campaign(module_settings, BUDGET, truth_uri=truth)
    assert (again.output.id, again.output.built, again.summary) == (campaign.output.id, False, campaign.summary)


def test_another_budget_is_another_plan(module_settings, campaign, truth):
    assert plan_campaign(module_settings, 1_000.0, truth_uri=truth).output.id != campaign.output.id


def test_a_budget_below_one_contact_is_refused_and_nothing_is_written(module_settings, campaign, truth):
    before = sorted(p.name for p in Path(campaigns_root(module_settings)).iterdir())
    with pytest.raises(CampaignError, match="cannot buy one contact"):
        plan_campaign(module_settings, 0.1, truth_uri=truth)
    assert sorted(p.name for p in Path(campaigns_root(module_settings)).iterdir()) == before


# --------------------------------------------------------------------------- measurement
@pytest.fixture(scope="module")
def measured(module_settings, campaign, module_snapshot):
    """The campaign measured on its own snapshot's labels (data in which it was never run)."""
    return measure_campaign(module_settings, campaign, module_snapshot)


def test_measurement_compares_every_listed_customer_by_arm(measured, targets):
    overall = measured.summary["overall"]
    assert overall["contacted"] == (targets["arm"] != CONTROL).sum()
    assert overall["control"] == (targets["arm"] == CONTROL).sum()
    assert measured.summary["not_found"] == 0


def test_measured_churn_rates_are_the_labels_of_each_arm(measured, targets, frame):
    churned = frame.loc[targets["customer_id"], "label"].to_numpy() == 1
    control = (targets["arm"] == CONTROL).to_numpy()
    overall = measured.summary["overall"]
    assert np.isclose(overall["churn_rate_control"], churned[control].mean())
    assert np.isclose(overall["churn_rate_contacted"], churned[~control].mean())
    drop = overall["churn_drop"]
    assert drop["low"] < drop["estimate"] == pytest.approx(churned[control].mean() - churned[~control].mean())
    assert drop["estimate"] < drop["high"]


def test_measurement_writes_its_report_and_plot(measured):
    folder = Path(measured.output.uri)
    assert (folder / "effect.png").read_bytes()[:4] == b"\x89PNG"
    assert "measured against its control group" in (folder / "report.md").read_text()


def test_measurement_reports_the_truth_and_whether_the_interval_holds_it(measured, summary):
    truth = measured.summary["realised"]
    assert truth["churners_saved"] == summary["realised"]["campaign"]["churners_saved"]
    assert isinstance(truth["within_interval"], bool)


def test_a_snapshot_at_another_date_cannot_measure_the_campaign(module_settings, campaign, tmp_path_factory):
    frame, features = synthetic_customers(200)
    elsewhere = Settings(state_dir=tmp_path_factory.mktemp("elsewhere"), redis_url=None, mlflow_tracking_uri=None)
    other = write_snapshot(elsewhere, frame, features, "20260131-other", as_of="2026-01-31")
    with pytest.raises(MeasurementError, match="as-of date"):
        measure_campaign(module_settings, campaign, other)


def test_a_campaign_without_a_control_group_cannot_be_measured(module_settings, scores, truth, module_snapshot):
    no_control = module_settings.model_copy(update={"interventions": module_settings.interventions.model_copy(
        update={"control_share": 0.0})})
    plan = plan_campaign(no_control, BUDGET, truth_uri=truth)
    before = list(Path(measurements_root(module_settings)).iterdir())
    with pytest.raises(MeasurementError, match="no control group"):
        measure_campaign(no_control, plan, module_snapshot)
    assert list(Path(measurements_root(module_settings)).iterdir()) == before
