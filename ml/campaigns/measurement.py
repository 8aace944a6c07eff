"""A campaign measured once its outcome window has passed: churn of the contacted against the
control group kept aside from the same selection.

The control group is a random share of the customers the plan selected, so the difference in churn
rate between the two arms is an unbiased estimate of what the contacts did to those customers
(normal-approximation interval). Saved revenue weights each customer by their value; cost per
churner saved and ROI follow from the contacts' cost. Per intervention, the contacted with that
intervention are compared with the control-group customers the plan had chosen it for.

Layout under ``<data>/measurements/<campaign id>-<outcome fingerprint>/``: ``measurement.json``,
``report.md`` and ``effect.png``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from core import outputs, storage
from core.provenance import fingerprint
from core.schema import CUSTOMER_ID, LABEL
from core.settings import Settings
from features.snapshot import Snapshot
from features.sources import CONTROL
from ml.campaigns.planner import ARM, CampaignPlan
from ml.plots import png_bytes, subplots
from ml.uplift.qini import effect_interval

SUMMARY, REPORT, PLOT = "measurement.json", "report.md", "effect.png"
DPI = 110


class MeasurementError(ValueError):
    """A campaign that cannot be measured (yet); the message says why."""


@dataclass(frozen=True)
class CampaignMeasurement:
    output: outputs.Output
    summary: dict[str, Any]


def measurements_root(settings: Settings) -> str:
    return storage.join(settings.data_uri, "measurements")


def outcome_window(plan: CampaignPlan, horizon_days: int) -> tuple[dt.date, dt.date]:
    """The days after the campaign's as-of date in which its outcome is counted."""
    as_of = dt.date.fromisoformat(plan.summary["as_of"])
    return as_of + dt.timedelta(days=1), as_of + dt.timedelta(days=horizon_days)


def measure_campaign(settings: Settings, plan: CampaignPlan, outcome: Snapshot,
                     force: bool = False) -> CampaignMeasurement:
    """Compare the contacted with the control group on ``outcome``'s labels (a labelled snapshot at
    the campaign's as-of date, built from data that include the outcome window)."""
    if str(outcome.manifest["as_of"]) != plan.summary["as_of"] or not outcome.has_label:
        raise MeasurementError(f"snapshot {outcome.id} is not a labelled snapshot at the campaign's as-of date "
                               f"{plan.summary['as_of']}")
    targets = plan.read_targets()
    if not (targets[ARM] == CONTROL).any():
        raise MeasurementError(f"campaign {plan.output.id} kept no control group: its effect cannot be measured "
                               "(plan it with interventions.control_share > 0)")
    output_id = f"{plan.output.id}-" + fingerprint(outcome.id)
    output, summary = outputs.publish_summarised(
        measurements_root(settings), output_id,
        lambda tmp: _measure_into(tmp, plan, outcome, targets, settings.interventions.outcome_days),
        SUMMARY, force)
    return CampaignMeasurement(output, summary)


def _measure_into(out: str, plan: CampaignPlan, outcome: Snapshot, targets: pd.DataFrame,
                  default_horizon: int) -> dict[str, Any]:
    fs, path = storage.resolve(outcome.data_uri)
    labels = pq.read_table(path, filesystem=fs, columns=[CUSTOMER_ID, LABEL]).to_pandas().set_index(CUSTOMER_ID)
    churned = labels[LABEL].reindex(targets[CUSTOMER_ID])
    found = churned.notna().to_numpy()
    listed = targets[found].reset_index(drop=True)
    y = churned.to_numpy()[found].astype(bool)
    control = (listed[ARM] == CONTROL).to_numpy()
    overall = arm_effect(~control, y, listed)
    by_intervention = {}
    for name in sorted(listed["intervention"].unique()):
        planned = (listed["intervention"] == name).to_numpy()
        by_intervention[name] = arm_effect(~control[planned], y[planned], listed[planned])
    base_churners = int(labels[LABEL].sum())
    summary: dict[str, Any] = {
        "campaign": plan.output.id, "as_of": plan.summary["as_of"], "outcome_snapshot": outcome.id,
        "window": [str(d) for d in outcome_window(plan, int(outcome.manifest.get("horizon_days") or default_horizon))],
        "listed": len(targets), "not_found": int((~found).sum()), "customers": len(labels),
        "churners": base_churners, "overall": overall, "by_intervention": by_intervention,
        "churn_reduction": _share_of_churn(overall["churners_saved"], base_churners),
    }
    if "realised" in plan.summary:
        summary["realised"] = _against_truth(plan.summary["realised"]["campaign"], overall)
    storage.write_bytes_atomic(storage.join(out, PLOT), plot(summary))
    storage.write_text_atomic(storage.join(out, REPORT), report(summary))
    return summary


def arm_effect(treated: np.ndarray, churned: np.ndarray, listed: pd.DataFrame) -> dict[str, Any]:
    """Contacted vs control among ``listed``: churn rates, the drop with its 95% interval, churners
    and revenue saved among the contacted, cost, cost per churner saved and ROI."""
    value = listed["customer_value"].to_numpy(np.float64)
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    drop, low, high = effect_interval(treated, churned) if n_t and n_c else (float("nan"),) * 3
    cost = float(listed["cost"].to_numpy()[treated].sum())
    saved = [d * n_t for d in (drop, low, high)]
    revenue = _value_rate(~treated, churned, value) - _value_rate(treated, churned, value)
    saved_revenue = float(revenue * value[treated].sum())
    return {
        "contacted": n_t, "control": n_c,
        "churn_rate_contacted": float(churned[treated].mean()) if n_t else None,
        "churn_rate_control": float(churned[~treated].mean()) if n_c else None,
        "churn_drop": _interval(drop, low, high), "churners_saved": _interval(*saved),
        "saved_revenue": saved_revenue, "cost": cost,
        "cost_per_churner_saved": cost / saved[0] if saved[0] > 0 else None,
        "roi": (saved_revenue - cost) / cost if cost else None,
    }


def _value_rate(rows: np.ndarray, churned: np.ndarray, value: np.ndarray) -> float:
    """Share of the rows' value that churned."""
    total = value[rows].sum()
    return float(value[rows & churned].sum() / total) if total else 0.0


def _interval(estimate: float, low: float, high: float) -> dict[str, float | None]:
    """An estimate and its bounds; None where there is no control group to bound it."""
    return {k: None if np.isnan(v) else float(v) for k, v in (("estimate", estimate), ("low", low), ("high", high))}


def _share_of_churn(saved: dict[str, float | None], churners: int) -> dict[str, float | None]:
    """Churners saved as a share of the churners there would have been (those seen plus those saved)."""
    return {k: None if v is None else v / (churners + v) if churners + v > 0 else 0.0 for k, v in saved.items()}


def _against_truth(realised: dict[str, Any], overall: dict[str, Any]) -> dict[str, Any]:
    """The generator's truth for the same contacts, and whether the measured interval holds it."""
    true_saved = float(realised["churners_saved"])
    low, high = overall["churners_saved"]["low"], overall["churners_saved"]["high"]
    return {"churners_saved": true_saved, "churn_reduction": realised["churn_reduction"],
            "within_interval": low is not None and low <= true_saved <= high}


def plot(summary: dict[str, Any]) -> bytes:
    """Churn rate of the contacted and of the control group, overall and per intervention, with the
    measured drop's interval."""
    arms = {"all contacted": summary["overall"], **summary["by_intervention"]}
    fig, ax = subplots(figsize=(1.6 * len(arms) + 2.5, 3.8))
    x = np.arange(len(arms))
    control = [a["churn_rate_control"] or 0.0 for a in arms.values()]
    contacted = [a["churn_rate_contacted"] or 0.0 for a in arms.values()]
    half = [(a["churn_drop"]["high"] - a["churn_drop"]["low"]) / 2 if a["churn_drop"]["low"] is not None else 0.0
            for a in arms.values()]
    ax.bar(x - 0.2, control, 0.4, label="control group", color="#999999")
    ax.bar(x + 0.2, contacted, 0.4, yerr=half, capsize=4, label="contacted (95% CI of the drop)",
           color="#1f77b4")
    ax.set_xticks(x, [f"{k}\n{a['contacted']:,} / {a['control']:,}" for k, a in arms.items()], fontsize=8)
    ax.set_ylabel(f"churn rate, {summary['window'][0]} .. {summary['window'][1]}")
    ax.set_title(f"campaign {summary['campaign'][:32]}: contacted vs control")
    ax.legend(fontsize=8)
    return png_bytes(fig, DPI)


def report(summary: dict[str, Any]) -> str:
    """The page marketing reads: the headline effect, per intervention, the truth where known."""
    o = summary["overall"]
    drop, saved, share = o["churn_drop"], o["churners_saved"], summary["churn_reduction"]
    lines = [f"# Campaign {summary['campaign']}: measured against its control group", "",
             f"- contacted on **{summary['as_of']}**; outcome counted {summary['window'][0]} .. {summary['window'][1]} "
             f"(snapshot {summary['outcome_snapshot']})",
             f"- {o['contacted']:,} contacted, {o['control']:,} in the control group"
             + (f"; {summary['not_found']:,} listed customers absent from the outcome data" if summary["not_found"]
                else ""),
             f"- churn **{_pct(o['churn_rate_contacted'])}** contacted vs **{_pct(o['churn_rate_control'])}** "
             f"control: a drop of {_span(drop, '+.2%')}",
             f"- churners saved: **{_span(saved, ',.1f')}**, {_span(share, '.1%')} of the base's would-be churners",
             f"- saved revenue {o['saved_revenue']:,.0f} for a cost of {o['cost']:,.0f}: "
             f"cost per churner saved {_money(o['cost_per_churner_saved'])}, ROI {_ratio(o['roi'])}"]
    if "realised" in summary:
        r = summary["realised"]
        lines.append(f"- generator's truth: {r['churners_saved']:,.0f} churners saved "
                     f"({r['churn_reduction']:.1%}), {'inside' if r['within_interval'] else 'OUTSIDE'} the measured "
                     "interval")
    lines += ["", "| intervention | contacted | control | churn contacted | churn control | drop (95% CI) | "
              "churners saved | saved revenue | cost | cost per churner saved | ROI |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, a in {"all": o, **summary["by_intervention"]}.items():
        d = a["churn_drop"]
        lines.append(f"| {name} | {a['contacted']:,} | {a['control']:,} | {_pct(a['churn_rate_contacted'])} | "
                     f"{_pct(a['churn_rate_control'])} | {_span(d, '+.2%')} "
                     f"| {_span(a['churners_saved'], ',.1f', bounds=False)} | {a['saved_revenue']:,.0f} | "
                     f"{a['cost']:,.0f} | {_money(a['cost_per_churner_saved'])} | {_ratio(a['roi'])} |")
    lines += ["", "A per-intervention control group is the share of the control group the plan had chosen that "
              "intervention for; small groups give wide intervals.", "", f"![effect]({PLOT})"]
    return "\n".join(lines) + "\n"


def _span(interval: dict[str, float | None], spec: str, bounds: bool = True) -> str:
    """``estimate (low .. high)``, or the estimate alone, or ``-`` without a control group."""
    estimate, low, high = interval["estimate"], interval["low"], interval["high"]
    if estimate is None:
        return "-"
    if not bounds or low is None or high is None:
        return format(estimate, spec)
    return f"{estimate:{spec}} (95% CI {low:{spec}} .. {high:{spec}})"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _money(amount: float | None) -> str:
    return "-" if amount is None else f"{amount:,.0f}"


def _ratio(roi: float | None) -> str:
    return "-" if roi is None else f"{roi:+.0%}"
