"""A campaign planned on real batch scores (Ray, MLflow) against a ground truth: the target list,
its budget and values, the baselines it beats, the realised churn reduction, and idempotency.
The scores and the plan are made once for the module."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.settings import CampaignSettings, InterventionSettings
from ml.campaigns.optimiser import Catalogue
from ml.campaigns.planner import plan_campaign
from ml.scoring import batch

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
    assert len(targets) == summary["strategies"]["campaign"]["contacted"] > 0


def test_campaign_targets_are_ranked_by_positive_expected_net_value(targets):
    assert targets["expected_net_value"].is_monotonic_decreasing and (targets["expected_net_value"] > 0).all()


def test_campaign_targets_get_catalogue_interventions(targets):
    assert set(targets["intervention"]) <= set(CATALOGUE.names)


def test_campaign_beats_the_best_top_k_and_random_baselines(summary):
    campaign = summary["strategies"]["campaign"]["expected_net_value"]
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
