"""Drift monitoring: the statistics, detection of shifted features (and their ranking), no
alarm between two samples of the same process, the report, MLflow and the exit codes; and, when
the generator and the ETL are available, a generated drift scenario end to end."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import pytest
import typer
from conftest import register_model, synthetic_customers, write_snapshot
from typer.testing import CliRunner

from core.settings import DriftSettings
from ml.drift import check, measures
from ray_jobs import drift as drift_step

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


def test_grading_and_exit_codes():
    assert [measures.grade(v, 0.1, 0.25) for v in (None, 0.05, 0.1, 0.3)] == ["ok", "ok", "warn", "critical"]
    assert measures.worst("ok", "critical", "warn") == "critical" and measures.worst() == "ok"
    assert measures.EXIT_CODES == {"ok": 0, "warn": 1, "critical": 2}


def _columns(frame, names) -> dict[str, np.ndarray]:
    return {n: frame[n].to_numpy("float64") for n in names}


def _shifted(seed: int):
    """A second sample of the same process, with two features pushed away from it."""
    frame, features = synthetic_customers(4_000, seed=seed)
    frame["tickets_30d"] = np.random.default_rng(seed).poisson(3.0, len(frame)).astype("float32")
    frame["monthly_price"] *= 1.3
    return frame, features


def test_shifted_features_are_flagged_and_rank_first():
    reference, features = synthetic_customers(4_000, seed=0)
    current, _ = _shifted(1)
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
    assert measures.feature_drift("latency", ref, moved, SETTINGS, context=True).level == SETTINGS.context_level == "warn"


def test_missing_rate_and_label_rate_changes_are_graded():
    reference, features = synthetic_customers(4_000, seed=0)
    current, _ = synthetic_customers(4_000, seed=1)
    current.loc[current.index[::4], "monthly_price"] = np.nan  # 25% missing now
    price = measures.feature_drift("monthly_price", reference["monthly_price"].to_numpy("float64"),
                                current["monthly_price"].to_numpy("float64"), SETTINGS)
    assert price.missing_change == pytest.approx(0.25) and price.level == "critical" and price.psi < SETTINGS.psi_warn
    label = measures.label_drift(np.r_[np.ones(100), np.zeros(900)], np.r_[np.ones(160), np.zeros(840)], SETTINGS)
    assert label.relative_change == pytest.approx(0.6) and label.level == "critical"


@pytest.fixture
def cli(settings, monkeypatch) -> typer.Typer:
    monkeypatch.setenv("CHURN_STATE_DIR", str(settings.state_dir))
    app = typer.Typer()
    app.command()(drift_step.command)
    return app


@pytest.mark.slow
def test_drift_command_reports_logs_to_mlflow_and_exits_by_level(settings, cli):
    reference, features = synthetic_customers(4_000, seed=0)
    same, _ = synthetic_customers(4_000, seed=1)
    shifted, _ = _shifted(2)
    ref = write_snapshot(settings, reference, features, snapshot_id="20260531-ref")
    register_model(settings, ref)
    write_snapshot(settings, same, features, snapshot_id="20260630-same")
    write_snapshot(settings, shifted, features, snapshot_id="20260730-shifted")

    runner = CliRunner()
    ok = runner.invoke(cli, ["--reference", ref.id, "--current", "20260630-same"])
    assert ok.exit_code == 0, ok.output
    critical = runner.invoke(cli, ["--reference", ref.id, "--current", "latest"])
    assert critical.exit_code == 2, critical.output
    assert "tickets_30d" in critical.output

    run = check.check_drift(settings, ref.id, "latest")  # the report just written, reused
    assert not run.output.built and run.status == "critical"
    assert run.summary["prediction"]["level"] != "ok" and run.summary["label"] is not None
    page = run.report.read_text()
    plots = sorted(run.report.parent.glob("*.png"))
    assert len(plots) == 2 + len(features)  # PSI bars, predictions, every feature (fewer than settings.plots)
    assert all(f'src="{p.name}"' in page for p in plots)
    assert {p.name for p in plots} >= {"psi.png", "predictions.png", "feature_01_tickets_30d.png"} or \
        {p.name for p in plots} >= {"psi.png", "predictions.png", "feature_01_monthly_price.png"}

    mlflow.set_tracking_uri(settings.tracking_uri)
    logged = mlflow.search_runs(experiment_names=[settings.registry.experiment], filter_string="tags.kind = 'drift'")
    assert sorted(logged["tags.drift_status"]) == ["critical", "ok"]
    artifacts = mlflow.artifacts.list_artifacts(run_id=logged.iloc[0]["run_id"], artifact_path="drift_report")
    assert any(a.path.endswith("report.html") for a in artifacts)


# --- a generated drift scenario end to end (generator + Spark ETL) ---------------------------

SCENARIO = "competitor_offer"
TOUCHED = {"competitor_offers_30d", "competitor_discount_max_30d", "cancel_page_visits_30d", "web_visits_30d"}
"""Features built from the sources the scenario changes (competitor offers and web visits)."""
START, DAYS, DRIFT_START = "2026-04-01", 60, "2026-05-01"
AS_OF = dt.date(2026, 5, 30)


def _generate(out: Path, seed: int, **drift_args) -> Path:
    generate = pytest.importorskip("simulator").generate
    generate(str(out), customers=2_000, days=DAYS, seed=seed, start_date=START, defect_rate=0.0, shard_size=2_000,
             **drift_args)
    return out / "raw"


def _snapshot(spark, settings, raw: Path, as_of: dt.date):
    raw_etl = pytest.importorskip("features.raw_etl")
    return raw_etl.run(spark, settings, str(raw), as_of, scoring=True).snapshot


@pytest.mark.slow
def test_a_generated_scenario_is_detected_on_the_features_it_touches(spark, settings, tmp_path):
    """Same seed with and without the scenario; then another seed of the undrifted business (the
    same process, other customers and market draws) for the no-false-alarm check."""
    baseline = _snapshot(spark, settings, _generate(tmp_path / "baseline", seed=11), AS_OF)
    drifted = _snapshot(spark, settings, _generate(tmp_path / "drifted", seed=11, drift=SCENARIO,
                                                   drift_start=DRIFT_START), AS_OF)
    other_draw = _snapshot(spark, settings, _generate(tmp_path / "other", seed=12), AS_OF)

    run = check.check_drift(settings, baseline.id, drifted.id, model_ref=None)
    top = run.summary["features"][:2]
    assert run.status != "ok" and {f["feature"] for f in top} <= TOUCHED, run.summary["features"][:5]
    assert all(f["level"] != "ok" for f in top)

    same_process = check.check_drift(settings, baseline.id, other_draw.id, model_ref=None)
    assert same_process.status != "critical", [f for f in same_process.summary["features"] if f["level"] != "ok"]
