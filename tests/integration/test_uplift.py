"""The uplift model from generated contact history, on real components: Spark on Ray builds the
snapshots on each campaign's date, Ray Train fits the boosters, MLflow registers the model with
its gate, and a campaign plans on its learnt effects. Built once for the module."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import ray

from core.ray_session import init_with_retry
from features.snapshot import snapshots_root
from features.sources import CONTROL
from features.spark_session import raydp_spark
from ml import registry
from ml.campaigns.effects import uplift_effects
from ml.campaigns.optimiser import Catalogue
from ml.campaigns.planner import plan_campaign
from ml.scoring import batch
from ml.uplift.history import HistoryError, usable_campaigns
from ml.uplift.pipeline import train_and_register_uplift
from ml.uplift.registry import load_uplift
from ml.uplift.snapshots import build_history
from simulator import generate

from support import register_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DAYS = 100
"""Long enough for one past campaign (day 29) whose outcome window ends before the last 30 days."""


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("generated")
    generate(str(out), customers=2_000, days=DAYS, seed=5, start_date="2026-04-01", defect_rate=0.02,
             shard_size=2_000, use_ray=False)
    return str(out / "raw")


@pytest.fixture(scope="module")
def history(ray_cluster, module_settings, raw):
    with raydp_spark(module_settings) as spark:
        built = build_history(spark, module_settings, raw)
    ray.shutdown()  # RayDP's Java side stays in its Ray session: training and scoring get a fresh one
    init_with_retry(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    return built


@pytest.fixture(scope="module")
def report(module_settings, history):
    return train_and_register_uplift(module_settings, history, promote=True)


def test_the_history_holds_the_windows_campaign_with_its_control_group(history):
    assert [c.date.isoformat() for c in history.campaigns] == ["2026-04-30"]
    arms = set(history.contacts["arm"])
    assert CONTROL in arms and arms - {CONTROL}
    assert len(history.snapshots) == 1 and history.snapshots[0].has_label


def test_the_campaign_snapshots_leave_the_latest_pointer_alone(module_settings, history):
    assert not Path(snapshots_root(module_settings), "LATEST").exists()


def test_a_history_without_a_control_arm_is_refused_naming_it(history):
    treated_only = history.contacts[history.contacts["arm"] != CONTROL]
    with pytest.raises(HistoryError, match="no control group"):
        usable_campaigns(treated_only, dt.date(2026, 4, 1) + dt.timedelta(days=DAYS - 1), 30)


def test_the_uplift_model_is_registered_as_challenger_with_its_held_out_qini(module_settings, report):
    client = registry.setup(module_settings)
    name = module_settings.registry.uplift_model_name
    challenger = registry.version_by_alias(client, module_settings, registry.CHALLENGER, name)
    assert str(challenger.version) == report.version
    assert float(challenger.tags["holdout_qini"]) == pytest.approx(report.metrics["holdout_qini"], abs=1e-6)


def test_the_champion_alias_follows_the_gate(module_settings, report):
    client = registry.setup(module_settings)
    champion = registry.version_by_alias(client, module_settings, registry.CHAMPION,
                                         module_settings.registry.uplift_model_name)
    assert (champion is not None and str(champion.version) == report.version) == report.promoted


def test_the_model_has_a_booster_for_every_intervention_it_saw_contacted(module_settings, report):
    model, version = load_uplift(module_settings, report.version)
    assert version == report.version and model.interventions
    assert set(model.interventions) <= set(module_settings.interventions.catalogue)


def test_the_evaluation_report_shows_qini_curves(report):
    folder = report.report_path.parent
    assert (folder / "qini_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "Held-out Qini" in report.report_path.read_text()


def test_a_campaign_plans_on_the_uplift_models_learnt_drops(module_settings, history, report):
    snapshot = history.snapshots[0]
    register_model(module_settings, snapshot)
    batch.score_snapshot(module_settings, snapshot.id)
    plan = plan_campaign(module_settings, 5_000.0, uplift_ref=report.version)
    assert plan.summary["basis"] == f"uplift model v{report.version}"
    targets = plan.read_targets()
    model, _ = load_uplift(module_settings, report.version)
    frame = snapshot.to_pandas().set_index("customer_id").loc[targets["customer_id"]]
    catalogue = Catalogue.from_settings(module_settings.interventions)
    effect = uplift_effects(model, frame[model.feature_names].to_numpy("float32"), catalogue)
    chosen = [catalogue.names.index(name) for name in targets["intervention"]]
    np.testing.assert_allclose(targets["expected_churn_drop"], effect[np.arange(len(targets)), chosen], rtol=1e-5)
    assert (targets.loc[targets["arm"] != CONTROL, "cost"].sum()) <= 5_000.0
