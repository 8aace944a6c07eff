"""Batch scoring: pool sizing that cannot starve the reads, vectorised reasons, and the scores
run on the 2-CPU local Ray cluster: content, idempotency, atomic output, segment counts."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from conftest import register_model, synthetic_customers, write_snapshot

from core.settings import ScoringSettings, SegmentSettings, Settings
from features.feature_set import FeatureSet, FeatureSpec
from features.snapshot import LATEST
from ml import registry
from ml.evaluation.explain import top_reasons
from ml.scoring import batch, scorer, segments
from ml.scoring.score_table import SCORED_AT, SEGMENT, tier_summary


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
    scorer.check_compatible(snapshot, snapshot)


def test_quantile_tiers_split_the_population_by_share():
    proba = np.random.default_rng(0).beta(1, 6, 10_000)
    tiers = SegmentSettings(tiers={"top": 0.9, "next": 0.5, "rest": 0.0}, by_quantile=True)
    shares = {t["tier"]: t["share"] for t in tier_summary(proba, segments.tier_bounds(tiers, proba))}
    assert shares == pytest.approx({"top": 0.1, "next": 0.4, "rest": 0.5}, abs=1e-3)


def _by_customer(run: batch.BatchScores):
    return run.read_table().to_pandas().sort_values("customer_id", ignore_index=True)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# One state folder, snapshot, model and scores run for the module: each scoring run starts an
# actor pool, the slow part on a busy 2-CPU machine.
@pytest.fixture(scope="module")
def msettings(tmp_path_factory) -> Settings:
    return Settings(state_dir=tmp_path_factory.mktemp("scoring"), redis_url=None, mlflow_tracking_uri=None)


@pytest.fixture(scope="module")
def snapshot(msettings):
    frame, features = synthetic_customers(3_000)
    return write_snapshot(msettings, frame, features)


@pytest.fixture(scope="module")
def scored(ray_cluster, msettings, snapshot):
    register_model(msettings, snapshot)
    return batch.score_snapshot(msettings, "latest", "champion")


@pytest.mark.slow
def test_scores_hold_every_customer_with_the_model_probability(msettings, snapshot, scored):
    scores = scored.read_table().to_pandas().sort_values("customer_id", ignore_index=True)
    frame = snapshot.to_pandas()
    assert list(scores.columns) == ["customer_id", "probability", SEGMENT, "top_reasons", "model_version",
                                    "snapshot_id", SCORED_AT]
    assert scores["customer_id"].tolist() == frame["customer_id"].tolist()  # every customer once
    model = registry.load(msettings, "champion")
    expected = model.booster.inplace_predict(frame[model.features.names].to_numpy("float32"))
    np.testing.assert_allclose(scores["probability"], expected, rtol=1e-6)
    assert set(scores["model_version"]) == {model.version} and set(scores["snapshot_id"]) == {snapshot.id}
    reasons = scores["top_reasons"][scores["top_reasons"] != ""].str.split("; ")
    assert reasons.map(len).max() == msettings.segments.top_reasons
    assert set(reasons.explode()) <= set(model.features.names)
    csv = pacsv.read_csv(Path(scored.output.uri) / batch.CSV).to_pandas().sort_values("customer_id",
                                                                                         ignore_index=True)
    assert csv["customer_id"].tolist() == scores["customer_id"].tolist()
    np.testing.assert_allclose(csv["probability"], scores["probability"], rtol=1e-6)
    assert (Path(batch.scores_root(msettings)) / LATEST).read_text().strip() == scored.output.id


@pytest.mark.slow
def test_segment_counts_match_the_thresholds(msettings, scored):
    scores = scored.read_table().to_pandas()
    tiers = {t["tier"]: t for t in scored.summary["tiers"]}
    p = scores["probability"].to_numpy()
    bounds = sorted(msettings.segments.tiers.items(), key=lambda kv: -kv[1])
    for i, (name, low) in enumerate(bounds):
        high = bounds[i - 1][1] if i else np.inf
        in_tier = (p >= low) & (p < high)
        assert (scores[SEGMENT] == name).sum() == in_tier.sum() == tiers[name]["customers"]
        assert tiers[name]["expected_churners"] == pytest.approx(p[in_tier].sum(), rel=1e-5)
    assert sum(t["customers"] for t in tiers.values()) == scored.summary["rows"] == len(scores)


@pytest.mark.slow
def test_a_rerun_reuses_the_complete_folder(msettings, scored):
    before = _digest(Path(scored.output.uri))
    again = batch.score_snapshot(msettings, "latest", "champion")
    assert (again.output.id, again.output.built) == (scored.output.id, False)
    assert _digest(Path(scored.output.uri)) == before and again.summary == scored.summary


@pytest.mark.slow
def test_a_forced_rerun_with_the_pool_that_hung_gives_identical_scores(msettings, scored):
    """Recomputed with two actors at one CPU each on the 2-CPU cluster, the configuration that left
    the reads no CPU and hung: it is shrunk to fit, completes, and only ``scored_at`` differs."""
    first = _by_customer(scored)
    hung = msettings.model_copy(update={"scoring": ScoringSettings(actors=2, cpus_per_actor=1.0, batch_size=700)})
    forced = batch.score_snapshot(hung, "latest", "champion", force=True)
    assert forced.output.built and forced.output.id == scored.output.id and forced.summary["pool"]["actors"] == 1
    second = _by_customer(forced)
    assert second.drop(columns=SCORED_AT).equals(first.drop(columns=SCORED_AT))
    assert forced.summary["tiers"] == scored.summary["tiers"]


@pytest.mark.slow
def test_a_crash_while_writing_leaves_no_output(msettings, snapshot, scored, tmp_path, monkeypatch):
    elsewhere = msettings.model_copy(update={"data_root": str(tmp_path / "data")})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(score_runs, "export_csv", crash)  # after the parquet parts are written
    with pytest.raises(OSError, match="disk full"):
        batch.score_snapshot(elsewhere, snapshot.uri, "champion")
    assert list(Path(batch.scores_root(elsewhere)).iterdir()) == []  # no run, no temporary, no LATEST


@pytest.mark.slow
def test_quantile_tiers_score_in_two_passes_with_the_same_probabilities(msettings, scored):
    """With quantile tiers the bounds need every probability before any row is labelled."""
    quantiles = msettings.model_copy(update={"segments": SegmentSettings(tiers={"top": 0.9, "rest": 0.0},
                                                                         by_quantile=True)})
    run = batch.score_snapshot(quantiles, "latest", "champion")
    scores, first = _by_customer(run), _by_customer(scored)
    np.testing.assert_array_equal(scores["probability"], first["probability"])
    assert (scores[SEGMENT] == "top").mean() == pytest.approx(0.1, abs=2e-3)
    assert {t["tier"]: t["customers"] for t in run.summary["tiers"]} == scores[SEGMENT].value_counts().to_dict()
