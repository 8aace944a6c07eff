"""One uplift run: contact history + snapshots on the campaigns' dates -> held-out campaign ->
Ray Train -> Qini evaluation -> MLflow (params, metrics every N rounds, model, report) ->
registered as ``challenger``; ``champion`` moves only when the gate passes.

The gate: on the held-out campaign the model must rank better than random (Qini > 0), not worse
than ranking by churn risk (the fixed-rate plan's order), and beat the champion by the margin.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from core.provenance import code_version
from core.schema import CUSTOMER_ID
from core.settings import Settings
from ml import registry
from ml.data import HOLDOUT, SPLIT, TRAIN, VALIDATION, split_of
from ml.uplift import evaluation as ev
from ml.uplift.history import ARM, CAMPAIGN, Campaign, history_rows
from ml.uplift.learner import fit_uplift
from ml.uplift.registry import load_uplift, log_uplift, register_uplift
from ml.uplift.snapshots import History

log = logging.getLogger(__name__)
SINGLE_CAMPAIGN_HOLDOUT = 0.3


@dataclass
class UpliftReport:
    run_id: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, float]
    report_path: Path
    rows: int
    aside: int
    seconds: float

    def summary(self) -> list[str]:
        m = self.metrics
        verdict = "promoted to champion" if self.promoted else "not promoted"
        return [f"uplift model version {self.version} (challenger), {verdict}: {self.reason}",
                f"held-out Qini {m['holdout_qini']:+.5f} (by churn risk {m['holdout_qini_risk']:+.5f}); "
                f"{self.rows:,} rows, {self.aside:,} contacts set aside; {self.seconds:.1f} s",
                f"evaluation report: {self.report_path}  (MLflow run {self.run_id})"]


def split_history(rows: pd.DataFrame, campaigns: list[Campaign], settings: Settings) -> tuple[pd.DataFrame, list[str]]:
    """``SPLIT`` per row: the latest campaign is the holdout (a share of its customers when there is
    only one); the rest train/validation by a stable hash of the customer."""
    t = settings.train
    notes = []
    ids = rows[CUSTOMER_ID].to_numpy()
    if len(campaigns) > 1:
        holdout = (rows[CAMPAIGN] == campaigns[-1].id).to_numpy()
    else:
        holdout = split_of(ids, 0.0, SINGLE_CAMPAIGN_HOLDOUT, t.seed) == HOLDOUT
        notes.append(f"one campaign only: {SINGLE_CAMPAIGN_HOLDOUT:.0%} of its customers held out instead of a "
                     "whole campaign")
    fit_split = np.where(split_of(ids, t.validation_fraction, 0.0, t.seed) == VALIDATION, VALIDATION, TRAIN)
    return rows.assign(**{SPLIT: np.where(holdout, HOLDOUT, fit_split)}), notes


def gate(new: ev.UpliftEvaluation, champion: ev.UpliftEvaluation | None, settings: Settings) -> tuple[bool, str]:
    if new.qini <= 0:
        return False, f"held-out Qini {new.qini:+.5f} is no better than random targeting"
    if new.qini < new.qini_risk:
        return False, (f"held-out Qini {new.qini:+.5f} is below ranking by churn risk ({new.qini_risk:+.5f}), "
                       "the fixed-rate plan's order")
    if champion is not None and new.qini < champion.qini + settings.uplift.min_qini_gain:
        return False, (f"held-out Qini {new.qini:+.5f} does not beat the champion's {champion.qini:+.5f} by "
                       f"{settings.uplift.min_qini_gain}")
    against = f", champion {champion.qini:+.5f}" if champion is not None else ", first champion"
    return True, f"held-out Qini {new.qini:+.5f} (by churn risk {new.qini_risk:+.5f}{against})"


def _champion_evaluation(settings: Settings, holdout: pd.DataFrame, names: list[str]) -> ev.UpliftEvaluation | None:
    try:
        champion, _ = load_uplift(settings, registry.CHAMPION)
    except registry.ModelNotFound:
        return None
    if champion.feature_names != names:
        log.warning("uplift champion uses other features: compared on Qini only where it can be")
        return None
    return ev.evaluate(champion, holdout)


def train_and_register_uplift(settings: Settings, history: History, promote: bool = True) -> UpliftReport:
    started = time.perf_counter()
    client = registry.setup(settings)
    snapshots, campaigns, notes = history.snapshots, history.campaigns, history.notes
    features = snapshots[0].feature_set
    rows, aside = history_rows(snapshots, campaigns, history.contacts)
    rows, split_notes = split_history(rows, campaigns, settings)
    notes = [*notes, *split_notes]
    catalogue = settings.interventions.catalogue
    trained = set(rows.loc[rows[SPLIT] != HOLDOUT, ARM].unique())
    interventions = [name for code, name in enumerate(catalogue, start=1) if code in trained]
    priors = {name: catalogue[name].success_rate for name in interventions}
    fit_rows = rows[rows[SPLIT] != HOLDOUT]
    holdout = rows[rows[SPLIT] == HOLDOUT]
    context = {"campaigns": ", ".join(f"{c.id} ({c.date})" for c in campaigns),
               "holdout_campaign": campaigns[-1].id if len(campaigns) > 1 else "customer share",
               "snapshots": ", ".join(s.id for s in snapshots), "schema_hash": features.schema_hash,
               "code_version": code_version(), "interventions": ", ".join(interventions)}
    with mlflow.start_run(run_name="uplift") as run:
        u = settings.uplift
        mlflow.log_params({**{f"baseline_{k}": v for k, v in u.baseline_params.items()},
                           **{f"arm_{k}": v for k, v in u.arm_params.items()},
                           **{f"prior_{k}": v for k, v in priors.items()},
                           "num_boost_round": u.num_boost_round, "num_workers": settings.train.num_workers})
        mlflow.set_tags(context)
        model, rounds = fit_uplift(fit_rows, features.names, interventions, priors, settings,
                                    settings.results_uri, f"uplift-{run.info.run_id[:8]}")
        for step, row in enumerate(rounds, start=1):
            mlflow.log_metrics({k: v for k, v in row.items() if "_" in k and not k.startswith("_")}, step=step)
        evaluation = ev.evaluate(model, holdout)
        champion = _champion_evaluation(settings, holdout, features.names)
        promoted, reason = gate(evaluation, champion, settings)
        metrics = {**evaluation.metrics(), "rows": float(len(rows)), "contacts_aside": float(len(aside))}
        mlflow.log_metrics(metrics)
        out = settings.state_dir / "reports" / "uplift" / run.info.run_id
        evaluation.plots = ev.plot(evaluation, out)
        aside.to_csv(out / "contacts_aside.csv", index=False)
        report = ev.write_report(evaluation, out, f"Uplift model evaluation: run {run.info.run_id[:8]}",
                                 {**context, "gate": ("passed: " if promoted else "refused: ") + reason,
                                  "contacts set aside": f"{len(aside):,} (contacts_aside.csv)"}, notes)
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        model_uri = log_uplift(model)
    version = register_uplift(client, settings, model_uri, {**context, "holdout_qini": f"{evaluation.qini:.6f}",
                                                            "holdout_qini_risk": f"{evaluation.qini_risk:.6f}",
                                                            "gate": reason})
    name = settings.registry.uplift_model_name
    if promoted and promote:
        previous = registry.version_by_alias(client, settings, registry.CHAMPION, name)
        client.set_registered_model_alias(name, registry.CHAMPION, version)
        registry.tag_version(client, settings, version, {"previous_champion": previous.version if previous else ""},
                             name)
    registry.tag_version(client, settings, version, {"promotion_decision": "promoted" if promoted and promote
                                                     else "rejected" if not promoted else "not asked"}, name)
    log.info("uplift model registered", extra={"version": version, "promoted": promoted, "qini": evaluation.qini})
    return UpliftReport(run.info.run_id, version, promoted and promote, reason, metrics, report, len(rows),
                        len(aside), time.perf_counter() - started)
