"""Measure step: a campaign whose outcome window has passed -> churn of the contacted against the
control group (labels from the raw data at the campaign's date, Spark on Ray).

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.measure --campaign latest``
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from core import logs
from core.outputs import OutputNotFound
from core.ray_session import ray_session
from core.settings import get_settings

console = Console()


def command(
    campaign: str = typer.Option("latest", help="Campaign run id, 'latest', or a campaign run URI."),
    raw: str | None = typer.Option(
        None, help="Raw sources that include the outcome window (on generated data: `churn generate --campaign`).",
        show_default="<data>/generated/raw"),
    force: bool = typer.Option(False, "--force", help="Recompute even if this measurement is already complete."),
) -> None:
    """Compare churn of a campaign's contacted customers with its control group, once the outcome is in."""
    from features import raw_etl
    from features.raw_etl import EtlError
    from features.snapshot import open_snapshot
    from features.spark_session import raydp_spark
    from ml.campaigns.measurement import REPORT, MeasurementError, measure_campaign, outcome_window
    from ml.campaigns.planner import open_campaign

    settings = get_settings()
    logs.configure(logs.new_run_id("measure"))
    raw_uri = raw or f"{settings.data_uri}/generated/raw"
    try:
        plan = open_campaign(settings, campaign)
        horizon = int(open_snapshot(settings, plan.summary["snapshot_id"]).manifest.get("horizon_days")
                      or settings.interventions.outcome_days)
        end = outcome_window(plan, horizon)[1]
        last = raw_etl.data_window(raw_uri)[1]
        if last < end:
            raise MeasurementError(f"the outcome window of campaign {plan.output.id} ends on {end}; the raw data "
                                   f"under {raw_uri} end on {last}: measure once they cover it")
        as_of = dt.date.fromisoformat(plan.summary["as_of"])
        with ray_session(settings), raydp_spark(settings) as spark:
            outcome = raw_etl.run_many(spark, settings, raw_uri, [as_of], horizon, latest=False)[0].snapshot
        result = measure_campaign(settings, plan, outcome, force)
    except (OutputNotFound, EtlError, MeasurementError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from e
    print_summary(result.summary)
    console.print(f"report: {result.output.uri}/{REPORT}")


def print_summary(s: dict[str, Any]) -> None:
    table = Table(title=f"campaign {s['campaign']} measured on {s['window'][0]} .. {s['window'][1]}")
    for col in ("arm", "contacted", "control", "churn contacted", "churn control", "drop (95% CI)",
                "churners saved", "cost per churner saved", "ROI"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for name, a in {"all": s["overall"], **s["by_intervention"]}.items():
        d = a["churn_drop"]
        span = "-" if d["low"] is None else f"{d['estimate']:+.1%} ({d['low']:+.1%} .. {d['high']:+.1%})"
        table.add_row(name, f"{a['contacted']:,}", f"{a['control']:,}", _pct(a["churn_rate_contacted"]),
                      _pct(a["churn_rate_control"]), span, _num(a["churners_saved"]["estimate"], ",.1f"),
                      _num(a["cost_per_churner_saved"], ",.0f"), _num(a["roi"], "+.0%"))
    console.print(table)
    share = s["churn_reduction"]
    if share["low"] is not None:
        console.print(f"churn reduction of the base: {share['estimate']:.1%} ({share['low']:.1%} .. "
                      f"{share['high']:.1%}) of {s['churners'] + s['overall']['churners_saved']['estimate']:,.0f} "
                      "would-be churners")
    if "realised" in s:
        r = s["realised"]
        console.print(f"generator's truth: {r['churners_saved']:,.0f} saved ({r['churn_reduction']:.1%}), "
                      f"{'inside' if r['within_interval'] else 'outside'} the measured interval")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    typer.run(command)
