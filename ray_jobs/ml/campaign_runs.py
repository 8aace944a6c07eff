"""A campaign run: a scores run + the intervention catalogue + a budget -> the target list and a
summary against random and top-k-by-probability targeting at the same budget.

Layout under ``<data>/campaigns/``::

    <run-id>/targets.parquet   customer_id, intervention, cost, probability, customer_value,
    <run-id>/targets.csv       expected_net_value, expected_saved_revenue, risk_segment, top_reasons
    <run-id>/summary.json
    LATEST

The run id fingerprints the scores run, the budget, the catalogue, the value settings and the
truth used, so a re-run with identical inputs reuses the completed folder.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.snapshot import fingerprint, open_snapshot
from features.spark_features import CUSTOMER_ID
from ray_jobs import storage
from ray_jobs.ml import campaigns, realised, runs
from ray_jobs.ml.campaigns import NO_CONTACT, Catalogue
from ray_jobs.ml.score_runs import SEGMENT, ScoreRun, open_scores
from ray_jobs.ml.scoring import PROBABILITY, REASONS
from ray_jobs.ml.value import customer_value
from ray_jobs.settings import Settings

log = logging.getLogger(__name__)

TARGETS_PARQUET, TARGETS_CSV, SUMMARY = "targets.parquet", "targets.csv", "summary.json"


@dataclass(frozen=True)
class CampaignRun:
    run: runs.Run
    summary: dict[str, Any]

    def read_targets(self) -> pd.DataFrame:
        fs, path = storage.resolve(storage.join(self.run.uri, TARGETS_PARQUET))
        return pq.read_table(path, filesystem=fs).to_pandas()


def campaigns_root(settings: Settings) -> str:
    return storage.join(settings.data_uri, "campaigns")


def default_truth(settings: Settings) -> Optional[str]:
    """The generator's truth next to the generated raw data, if there is one."""
    uri = storage.join(settings.data_uri, "generated", "truth", "customers.parquet")
    return uri if storage.exists(uri) else None


def plan_campaign(settings: Settings, budget: float, scores_ref: str = "latest", truth_uri: Optional[str] = None,
                  force: bool = False) -> CampaignRun:
    scores = open_scores(settings, scores_ref)
    catalogue = Catalogue.from_settings(settings.interventions)
    rid = f"{scores.run.id}-b{budget:g}-" + fingerprint(
        settings.interventions.model_dump(exclude={"budget"}), settings.campaign.model_dump(), truth_uri)
    summary: dict[str, Any] = {}

    def write(tmp: str) -> None:
        summary.update(_plan_into(tmp, settings, scores, catalogue, budget, truth_uri, rid))
        storage.write_json_atomic(storage.join(tmp, SUMMARY), summary)

    run = runs.publish(campaigns_root(settings), rid, write, force=force)
    return CampaignRun(run, summary if run.built else storage.read_json(storage.join(run.uri, SUMMARY)))


def _plan_into(out: str, settings: Settings, scores: ScoreRun, catalogue: Catalogue, budget: float,
               truth_uri: Optional[str], rid: str) -> dict[str, Any]:
    table = scores.read_table([CUSTOMER_ID, PROBABILITY, SEGMENT, REASONS])
    proba = table.column(PROBABILITY).to_numpy().astype(np.float64)
    value = customer_values(settings, scores, table.column(CUSTOMER_ID))
    started = time.perf_counter()
    selection = campaigns.select(proba, value, catalogue, budget)
    seconds = time.perf_counter() - started
    log.info("campaign selected", extra={"strategy": selection.strategy, "seconds": round(seconds, 2)})
    targets = target_table(table, selection.choice, proba, value, catalogue)
    _write_table(targets, storage.join(out, TARGETS_PARQUET), storage.join(out, TARGETS_CSV))

    strategies = {"campaign": campaigns.expected_outcome(selection.choice, proba, value, catalogue)}
    strategies.update({name: campaigns.expected_outcome(choice, proba, value, catalogue)
                       for name, choice in selection.baselines.items()})
    strategies.update({f"random_{name}": campaigns.random_outcome(proba, value, catalogue, budget, j)
                       for j, name in enumerate(catalogue.names)})
    summary = {
        "run_id": rid, "scores_run": scores.run.id, "snapshot_id": scores.summary["snapshot_id"],
        "model_version": scores.summary["model_version"], "budget": budget, "customers": len(proba),
        "strategy": selection.strategy, "selection_seconds": round(seconds, 3),
        "catalogue": settings.interventions.model_dump()["catalogue"],
        "strategies": strategies, "best_top_k": _best(strategies, "top_k_"), "best_random": _best(strategies, "random_"),
    }
    if truth_uri:
        summary["realised"] = _realised(settings, scores, table, selection, catalogue, truth_uri, strategies)
    return summary


def customer_values(settings: Settings, scores: ScoreRun, customer_ids: pa.ChunkedArray) -> np.ndarray:
    """Revenue at stake per scored customer, from the scored snapshot (in the scores' order)."""
    snapshot = open_snapshot(settings, scores.summary["snapshot_id"])
    value_feature = settings.campaign.value_feature
    columns = [CUSTOMER_ID] + ([value_feature] if value_feature in snapshot.feature_set.names else [])
    fs, path = storage.resolve(snapshot.data_uri)
    features = pq.read_table(path, filesystem=fs, columns=columns).to_pandas().set_index(CUSTOMER_ID)
    return customer_value(features.reindex(customer_ids.to_pandas()), settings.campaign)


def target_table(scores: pa.Table, choice: np.ndarray, proba: np.ndarray, value: np.ndarray,
                 catalogue: Catalogue) -> pa.Table:
    """The contacted customers with their intervention, best expected net value first."""
    chosen = np.flatnonzero(choice != NO_CONTACT)
    j = choice[chosen]
    saved_revenue = proba[chosen] * value[chosen] * catalogue.success[j]
    net = saved_revenue - catalogue.cost[j]
    order = np.argsort(-net, kind="stable")
    rows = chosen[order]
    return pa.table({
        CUSTOMER_ID: scores.column(CUSTOMER_ID).take(rows),
        "intervention": pa.array(np.array(catalogue.names, dtype=object)[j[order]], pa.string()),
        "cost": catalogue.cost[j[order]],
        PROBABILITY: proba[rows],
        "customer_value": value[rows],
        "expected_net_value": net[order],
        "expected_saved_revenue": saved_revenue[order],
        SEGMENT: scores.column(SEGMENT).take(rows),
        REASONS: scores.column(REASONS).take(rows),
    })


def _write_table(table: pa.Table, parquet_uri: str, csv_uri: str) -> None:
    fs, path = storage.resolve(parquet_uri)
    pq.write_table(table, path, filesystem=fs)
    fs, path = storage.resolve(csv_uri)
    with fs.open_output_stream(path) as sink:
        pacsv.write_csv(table, sink)


def _best(strategies: dict[str, dict[str, Any]], prefix: str) -> str:
    names = [k for k in strategies if k.startswith(prefix)]
    return max(names, key=lambda k: strategies[k]["expected_net_value"])


def _realised(settings: Settings, scores: ScoreRun, table: pa.Table, selection: campaigns.Selection,
              catalogue: Catalogue, truth_uri: str, strategies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Realised churn reduction of the campaign, the top-k plans and random targeting."""
    snapshot = open_snapshot(settings, scores.summary["snapshot_id"])
    days = snapshot.manifest.get("horizon_days") or settings.interventions.outcome_days
    as_of = dt.date.fromisoformat(str(snapshot.manifest["as_of"]))
    truth = realised.load_truth(truth_uri, table.column(CUSTOMER_ID), catalogue, as_of, days)
    out = {"truth": truth_uri, "window": list(truth.window), "goal_churn_reduction": settings.interventions.goal_churn_reduction,
           "campaign": realised.realised_outcome(selection.choice, truth)}
    out.update({name: realised.realised_outcome(choice, truth) for name, choice in selection.baselines.items()})
    out.update({f"random_{name}": realised.realised_random(truth, strategies[f"random_{name}"]["contacted"], j)
                for j, name in enumerate(catalogue.names)})
    return out
