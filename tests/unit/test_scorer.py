"""Batch scoring's pure parts: actor-pool sizing that cannot starve the reads, vectorised
reasons, the model/snapshot encoding check and quantile tiers (no Ray)."""
from __future__ import annotations

import numpy as np
import pytest

from core.settings import ScoringSettings, SegmentSettings
from features.feature_set import FeatureSet, FeatureSpec
from ml.evaluation.explain import top_reasons
from ml.scoring import scorer, segments
from ml.scoring.score_table import tier_summary


@pytest.mark.parametrize("cpus", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("asked", [{}, {"actors": 2, "cpus_per_actor": 1.0}, {"actors": 8}, {"cpus_per_actor": 4.0}])
def test_pool_always_leaves_cpus_for_the_read_and_write_tasks(cpus, asked):
    plan = scorer.plan_pool(cpus, ScoringSettings(**asked))
    assert plan.actors >= 1 and plan.cpus_per_actor > 0 and 0 < plan.io_cpus <= 0.5
    assert plan.actors * plan.cpus_per_actor + 2 * plan.io_cpus <= cpus + 1e-9  # a read and a write fit


def test_two_one_cpu_actors_on_two_cpus_is_shrunk_to_one():
    """The configuration that hung: it becomes one actor next to a read and a write task."""
    plan = scorer.plan_pool(2, ScoringSettings(actors=2, cpus_per_actor=1.0))
    assert (plan.actors, plan.cpus_per_actor, plan.io_cpus) == (1, 1.0, 0.5)


def test_the_default_pool_on_two_cpus_is_two_half_cpu_actors():
    default = scorer.plan_pool(2, ScoringSettings())
    assert (default.actors, default.cpus_per_actor, default.io_cpus) == (2, 0.5, 0.5)


def test_vectorised_reasons_match_the_explain_module():
    rng = np.random.default_rng(3)
    names = [f"f{i}" for i in range(12)]
    contribs = rng.normal(size=(500, 12))
    contribs[:5] = -np.abs(contribs[:5])  # nothing raises these customers' risk
    expected = ["; ".join(r["feature"] for r in row) for row in top_reasons(contribs, names, 3)]
    got = scorer.reason_text(contribs, names, 3).to_pylist()
    assert got == expected
    assert got[:5] == [""] * 5


def test_model_and_snapshot_must_agree_on_the_encoding():
    snapshot = FeatureSet((FeatureSpec("plan", "category", "", "t", categories=("a", "b")),))
    model = FeatureSet((FeatureSpec("plan", "category", "", "t", categories=("b", "a")),))
    with pytest.raises(scorer.SchemaMismatch, match="plan"):
        scorer.check_compatible(model, snapshot)


def test_the_same_feature_set_is_compatible():
    snapshot = FeatureSet((FeatureSpec("plan", "category", "", "t", categories=("a", "b")),))
    scorer.check_compatible(snapshot, snapshot)


def test_quantile_tiers_split_the_population_by_share():
    proba = np.random.default_rng(0).beta(1, 6, 10_000)
    tiers = SegmentSettings(tiers={"top": 0.9, "next": 0.5, "rest": 0.0}, by_quantile=True)
    shares = {t["tier"]: t["share"] for t in tier_summary(proba, segments.tier_bounds(tiers, proba))}
    assert shares == pytest.approx({"top": 0.1, "next": 0.4, "rest": 0.5}, abs=1e-3)
