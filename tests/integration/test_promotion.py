"""Champion/challenger promotion on a real local Ray cluster and MLflow (SQLite): the first
champion, a promotion past the margin, a rejection within it, and the rollback. The sequence
runs once for the module; each test checks one decision."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.settings import Settings
from ml import promotion, registry
from ml.training.pipeline import train_and_register

from support import register_model, synthetic_customers, write_snapshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def promotions(ray_cluster, tmp_path_factory) -> SimpleNamespace:
    """A weak model (trained on shuffled labels) becomes the first champion; a trained one is
    promoted over it; the same model again is rejected; then the champion is rolled back."""
    settings = Settings(state_dir=tmp_path_factory.mktemp("promotion"),
                        train={"num_boost_round": 40, "report_every": 10, "cv_folds": 0})
    frame, features = synthetic_customers(5_000)
    snap = write_snapshot(settings, frame, features)
    noise = frame.assign(label=np.random.default_rng(9).permutation(frame["label"].to_numpy()))
    client = registry.setup(settings)
    name = settings.registry.model_name

    def champion() -> str:
        return str(client.get_model_version_by_alias(name, "champion").version)

    weak = register_model(settings, write_snapshot(settings, noise, features, "20260630-noise"), alias="challenger")
    first = promotion.decide(settings, client)
    strong = train_and_register(settings, snap)
    promoted = promotion.decide(settings, client)
    promoted_tags = client.get_model_version(name, strong.version).tags
    train_and_register(settings, snap)  # the same model again: no gain, below the margin
    rejected = promotion.decide(settings, client)
    champion_after_rejection = champion()
    rollback = promotion.rollback(settings, client)
    return SimpleNamespace(weak=weak, strong=strong, first=first, promoted=promoted, promoted_tags=promoted_tags,
                           rejected=rejected, champion_after_rejection=champion_after_rejection,
                           rollback=rollback, champion_after_rollback=champion())


def test_the_first_challenger_becomes_the_first_champion(promotions):
    first = promotions.first
    assert first.promoted and first.reason == "first champion" and first.challenger == str(promotions.weak.version)


def test_a_better_challenger_is_promoted(promotions):
    decision = promotions.promoted
    assert decision.promoted, decision.reason
    assert decision.scores["challenger_auc"] > decision.scores["champion_auc"]


def test_a_promotion_is_tagged_with_its_decision_reason_and_previous_champion(promotions):
    tags = promotions.promoted_tags
    assert tags["promotion_decision"] == "promoted" and tags["previous_champion"] == str(promotions.weak.version)
    assert "ROC-AUC" in tags["promotion_reason"]


def test_promotion_needs_a_margin(promotions):
    rejected = promotions.rejected
    assert not rejected.promoted and "margin" in rejected.reason
    assert promotions.champion_after_rejection == promotions.strong.version


def test_promotion_can_roll_back(promotions):
    assert promotions.rollback == (promotions.strong.version, str(promotions.weak.version))
    assert promotions.champion_after_rollback == str(promotions.weak.version)
