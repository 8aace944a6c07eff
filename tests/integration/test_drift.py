"""Drift monitoring end to end: the `drift` command on published snapshots with a registered
model (MLflow on SQLite) — its exit codes, the HTML report with its plots, what it logs to
MLflow — and, when the generator and the ETL are available, a generated drift scenario through
Spark on Ray. Each scenario runs once per module; the tests assert on its results."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import typer
from typer.testing import CliRunner

from core.settings import Settings, get_settings
from ml.drift import check
from ray_jobs import drift as drift_step

from support import register_model, shifted_customers, synthetic_customers, write_snapshot

pytestmark = pytest.mark.slow


# --- the drift command on three published snapshots -----------------------------------------
@pytest.fixture(scope="module")
def drift_cli(tmp_path_factory):
    """A reference snapshot with its model, a second sample of the same process and a shifted
    one; the command run on the same sample, then on the shifted (latest) one; then the check
    asked again for the report just written."""
    settings = Settings(state_dir=tmp_path_factory.mktemp("drift"), redis_url=None, mlflow_tracking_uri=None)
    reference, features = synthetic_customers(4_000, seed=0)
    same, _ = synthetic_customers(4_000, seed=1)
    shifted, _ = shifted_customers(2)
    ref = write_snapshot(settings, reference, features, snapshot_id="20260531-ref")
    register_model(settings, ref)
    write_snapshot(settings, same, features, snapshot_id="20260630-same")
    write_snapshot(settings, shifted, features, snapshot_id="20260730-shifted")

    app = typer.Typer()
    app.command()(drift_step.command)
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_STATE_DIR", str(settings.state_dir))
        get_settings.cache_clear()
        ok = runner.invoke(app, ["--reference", ref.id, "--current", "20260630-same"])
        critical = runner.invoke(app, ["--reference", ref.id, "--current", "latest"])
        run = check.check_drift(settings, ref.id, "latest")  # the report just written, reused
    get_settings.cache_clear()
    return SimpleNamespace(settings=settings, features=features, ok=ok, critical=critical, run=run)


@pytest.fixture(scope="module")
def plots(drift_cli) -> list[Path]:
    return sorted(Path(drift_cli.run.report).parent.glob("*.png"))


@pytest.fixture(scope="module")
def logged(drift_cli):
    """The drift runs in the module's MLflow experiment."""
    settings = drift_cli.settings
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.search_runs(experiment_names=[settings.registry.experiment], filter_string="tags.kind = 'drift'")


def test_drift_command_exits_0_when_nothing_drifted(drift_cli):
    assert drift_cli.ok.exit_code == 0, drift_cli.ok.output


def test_drift_command_exits_2_on_critical_drift_naming_the_feature(drift_cli):
    assert drift_cli.critical.exit_code == 2, drift_cli.critical.output
    assert "tickets_30d" in drift_cli.critical.output


def test_drift_check_reuses_the_report_the_command_wrote(drift_cli):
    assert not drift_cli.run.output.built and drift_cli.run.status == "critical"


def test_drift_summary_is_stored_as_drift_json_beside_the_report(drift_cli):
    stored = json.loads((Path(drift_cli.run.report).parent / "drift.json").read_text())
    assert stored["status"] == drift_cli.run.status and stored["run_id"] == drift_cli.run.output.id


def test_drift_summary_grades_the_predictions_and_the_label(drift_cli):
    assert drift_cli.run.summary["prediction"]["level"] != "ok" and drift_cli.run.summary["label"] is not None


def test_drift_report_has_a_plot_per_feature_plus_psi_and_predictions(drift_cli, plots):
    assert len(plots) == 2 + len(drift_cli.features)  # PSI bars, predictions, every feature (fewer than settings.plots)
    assert {p.name for p in plots} >= {"psi.png", "predictions.png", "feature_01_tickets_30d.png"} or \
        {p.name for p in plots} >= {"psi.png", "predictions.png", "feature_01_monthly_price.png"}


def test_drift_report_page_embeds_every_plot(drift_cli, plots):
    page = Path(drift_cli.run.report).read_text()
    assert all(f'src="{p.name}"' in page for p in plots)


def test_drift_runs_are_logged_to_mlflow_with_their_status(logged):
    assert sorted(logged["tags.drift_status"]) == ["critical", "ok"]


def test_drift_report_is_logged_as_an_mlflow_artifact(drift_cli, logged):
    mlflow.set_tracking_uri(drift_cli.settings.tracking_uri)
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


@pytest.fixture(scope="module")
def scenario(spark, tmp_path_factory):
    """Same seed with and without the scenario; then another seed of the undrifted business (the
    same process, other customers and market draws) for the no-false-alarm check."""
    tmp = tmp_path_factory.mktemp("scenario")
    settings = Settings(state_dir=tmp, redis_url=None, mlflow_tracking_uri=None)
    baseline = _snapshot(spark, settings, _generate(tmp / "baseline", seed=11), AS_OF)
    drifted = _snapshot(spark, settings, _generate(tmp / "drifted", seed=11, drift=SCENARIO,
                                                   drift_start=DRIFT_START), AS_OF)
    other_draw = _snapshot(spark, settings, _generate(tmp / "other", seed=12), AS_OF)
    return SimpleNamespace(drifted=check.check_drift(settings, baseline.id, drifted.id, model_ref=None),
                           same_process=check.check_drift(settings, baseline.id, other_draw.id, model_ref=None))


def test_a_generated_scenario_is_detected_on_the_features_it_touches(scenario):
    run = scenario.drifted
    top = run.summary["features"][:2]
    assert run.status != "ok" and {f["feature"] for f in top} <= TOUCHED, run.summary["features"][:5]
    assert all(f["level"] != "ok" for f in top)


def test_another_draw_of_the_undrifted_business_is_not_critical(scenario):
    same_process = scenario.same_process
    assert same_process.status != "critical", [f for f in same_process.summary["features"] if f["level"] != "ok"]
