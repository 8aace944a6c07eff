"""The batch scores run on the 2-CPU local Ray cluster: content, CSV export, the LATEST pointer,
segment counts, idempotency, the pool that hung, atomic output, quantile tiers.

One state folder, snapshot, model and scores run for the module: each scoring run starts an
actor pool, the slow part on a busy 2-CPU machine."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

from core.settings import ScoringSettings, SegmentSettings
from features.snapshot import LATEST
from ml import registry
from ml.scoring import batch
from ml.scoring.score_table import SCORED_AT, SEGMENT

pytestmark = pytest.mark.slow


def _by_customer(run: batch.BatchScores):
    return run.read_table().to_pandas().sort_values("customer_id", ignore_index=True)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scored(ray_cluster, module_settings, module_champion):
    return batch.score_snapshot(module_settings, "latest", "champion")


@pytest.fixture(scope="module")
def scores(scored):
    return _by_customer(scored)


@pytest.fixture(scope="module")
def model(module_settings, scored):
    return registry.load(module_settings, "champion")


def test_scores_have_the_documented_columns(scores):
    assert list(scores.columns) == ["customer_id", "probability", SEGMENT, "top_reasons", "model_version",
                                    "snapshot_id", SCORED_AT]


def test_scores_hold_every_customer_once(module_snapshot, scores):
    frame = module_snapshot.to_pandas()
    assert scores["customer_id"].tolist() == frame["customer_id"].tolist()  # every customer once


def test_scores_are_the_model_probabilities(module_snapshot, scores, model):
    frame = module_snapshot.to_pandas()
    expected = model.booster.inplace_predict(frame[model.features.names].to_numpy("float32"))
    np.testing.assert_allclose(scores["probability"], expected, rtol=1e-6)


def test_scores_name_the_model_version_and_the_snapshot(module_snapshot, scores, model):
    assert set(scores["model_version"]) == {model.version} and set(scores["snapshot_id"]) == {module_snapshot.id}


def test_top_reasons_name_up_to_the_configured_number_of_model_features(module_settings, scores, model):
    reasons = scores["top_reasons"][scores["top_reasons"] != ""].str.split("; ")
    assert reasons.map(len).max() == module_settings.segments.top_reasons
    assert set(reasons.explode()) <= set(model.features.names)


def test_the_csv_export_holds_the_same_scores(scored, scores):
    csv = pacsv.read_csv(Path(scored.output.uri) / batch.CSV).to_pandas().sort_values("customer_id",
                                                                                         ignore_index=True)
    assert csv["customer_id"].tolist() == scores["customer_id"].tolist()
    np.testing.assert_allclose(csv["probability"], scores["probability"], rtol=1e-6)


def test_latest_points_at_the_new_scores(module_settings, scored):
    assert (Path(batch.scores_root(module_settings)) / LATEST).read_text().strip() == scored.output.id


def test_segment_counts_match_the_thresholds(module_settings, scored):
    scores = scored.read_table().to_pandas()
    tiers = {t["tier"]: t for t in scored.summary["tiers"]}
    p = scores["probability"].to_numpy()
    bounds = sorted(module_settings.segments.tiers.items(), key=lambda kv: -kv[1])
    for i, (name, low) in enumerate(bounds):
        high = bounds[i - 1][1] if i else np.inf
        in_tier = (p >= low) & (p < high)
        assert (scores[SEGMENT] == name).sum() == in_tier.sum() == tiers[name]["customers"]
        assert tiers[name]["expected_churners"] == pytest.approx(p[in_tier].sum(), rel=1e-5)
    assert sum(t["customers"] for t in tiers.values()) == scored.summary["rows"] == len(scores)


def test_a_rerun_reuses_the_complete_folder(module_settings, scored):
    before = _digest(Path(scored.output.uri))
    again = batch.score_snapshot(module_settings, "latest", "champion")
    assert (again.output.id, again.output.built) == (scored.output.id, False)
    assert _digest(Path(scored.output.uri)) == before and again.summary == scored.summary


def test_a_forced_rerun_with_the_pool_that_hung_gives_identical_scores(module_settings, scored):
    """Recomputed with two actors at one CPU each on the 2-CPU cluster, the configuration that left
    the reads no CPU and hung: it is shrunk to fit, completes, and only ``scored_at`` differs."""
    first = _by_customer(scored)
    hung = module_settings.model_copy(update={"scoring": ScoringSettings(actors=2, cpus_per_actor=1.0,
                                                                         batch_size=700)})
    forced = batch.score_snapshot(hung, "latest", "champion", force=True)
    assert forced.output.built and forced.output.id == scored.output.id and forced.summary["pool"]["actors"] == 1
    second = _by_customer(forced)
    assert second.drop(columns=SCORED_AT).equals(first.drop(columns=SCORED_AT))
    assert forced.summary["tiers"] == scored.summary["tiers"]


def test_a_crash_while_writing_leaves_no_output(module_settings, module_snapshot, scored, tmp_path, monkeypatch):
    elsewhere = module_settings.model_copy(update={"data_root": str(tmp_path / "data")})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(batch, "export_csv", crash)  # after the parquet parts are written
    with pytest.raises(OSError, match="disk full"):
        batch.score_snapshot(elsewhere, module_snapshot.uri, "champion")
    assert list(Path(batch.scores_root(elsewhere)).iterdir()) == []  # no run, no temporary, no LATEST


def test_quantile_tiers_score_in_two_passes_with_the_same_probabilities(module_settings, scored):
    """With quantile tiers the bounds need every probability before any row is labelled."""
    quantiles = module_settings.model_copy(update={"segments": SegmentSettings(tiers={"top": 0.9, "rest": 0.0},
                                                                               by_quantile=True)})
    run = batch.score_snapshot(quantiles, "latest", "champion")
    scores, first = _by_customer(run), _by_customer(scored)
    np.testing.assert_array_equal(scores["probability"], first["probability"])
    assert (scores[SEGMENT] == "top").mean() == pytest.approx(0.1, abs=2e-3)
    assert {t["tier"]: t["customers"] for t in run.summary["tiers"]} == scores[SEGMENT].value_counts().to_dict()
