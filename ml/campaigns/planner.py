"""Campaign planning: a scores output + the intervention catalogue + a budget -> the target list and a
summary against random and top-k-by-probability targeting at the same budget.

Layout under ``<data>/campaigns/``::

    <output-id>/targets.parquet   customer_id, intervention, cost, probability, customer_value,
    <output-id>/targets.csv       expected_net_value, expected_saved_revenue, risk_segment, top_reasons
    <output-id>/summary.json
    LATEST

The output id fingerprints the scores run, the budget, the catalogue, the value settings and the
truth used, so a re-run with identical inputs reuses the completed folder.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core import outputs, storage
from core.provenance import fingerprint
from core.schema import CUSTOMER_ID
from core.settings import Settings
from features.snapshot import Snapshot, open_snapshot
from ml.campaigns import optimiser, realised
from ml.campaigns.optimiser import NO_CONTACT, Catalogue
from ml.scoring.batch import BatchScores, open_scores
from ml.scoring.score_table import PROBABILITY, REASONS, SEGMENT
from ml.value import contact_value, customer_value

log = logging.getLogger(__name__)

TARGETS_PARQUET, TARGETS_CSV, SUMMARY = "targets.parquet", "targets.csv", "summary.json"


@dataclass(frozen=True)
class CampaignPlan:
    output: outputs.Output
    summary: dict[str, Any]

    def read_targets(self) -> pd.DataFrame:
        fs, path = storage.resolve(storage.join(self.output.uri, TARGETS_PARQUET))
        return pq.read_table(path, filesystem=fs).to_pandas()


def campaigns_root(settings: Settings) -> str:
    return storage.join(settings.data_uri, "campaigns")


def default_truth(settings: Settings) -> str | None:
    """The generator's truth next to the generated raw data, if there is one."""
    uri = storage.join(settings.data_uri, "generated", "truth", "customers.parquet")
    return uri if storage.exists(uri) else None


def plan_campaign(settings: Settings, budget: float, scores_ref: str = "latest", truth_uri: str | None = None,
                  force: bool = False) -> CampaignPlan:
    scores = open_scores(settings, scores_ref)
    catalogue = Catalogue.from_settings(settings.interventions)
    output_id = f"{scores.output.id}-b{budget:g}-" + fingerprint(
        settings.interventions.model_dump(exclude={"budget"}), settings.campaign.model_dump(), truth_uri)
    return CampaignPlan(*outputs.publish_summarised(
        campaigns_root(settings), output_id,
        lambda tmp: _plan_into(tmp, settings, scores, catalogue, budget, truth_uri, output_id),
        SUMMARY, force))


def _plan_into(out: str, settings: Settings, scores: BatchScores, catalogue: Catalogue, budget: float,
               truth_uri: str | None, output_id: str) -> dict[str, Any]:
    table = scores.read_table([CUSTOMER_ID, PROBABILITY, SEGMENT, REASONS])
    proba = table.column(PROBABILITY).to_numpy().astype(np.float64)
    snapshot = open_snapshot(settings, scores.summary["snapshot_id"])
    wanted = {settings.campaign.value_feature, *filter(None, catalogue.eligible_if)}
    customers = customer_features(snapshot, table.column(CUSTOMER_ID), wanted)
    value = customer_value(customers, settings.campaign)
    eligible, notes = eligibility(customers, catalogue)
    started = time.perf_counter()
    selection = optimiser.select(proba, value, catalogue, budget, eligible)
    seconds = time.perf_counter() - started
    log.info("campaign selected", extra={"strategy": selection.strategy, "seconds": round(seconds, 2)})
    targets = target_table(table, selection.choice, proba, value, catalogue)
    _write_table(targets, storage.join(out, TARGETS_PARQUET), storage.join(out, TARGETS_CSV))

    strategies = compare_strategies(selection, proba, value, catalogue, budget, eligible)
    summary = {
        "run_id": output_id, "scores_run": scores.output.id, "snapshot_id": scores.summary["snapshot_id"],
        "model_version": scores.summary["model_version"], "budget": budget, "customers": len(proba),
        "strategy": selection.strategy, "selection_seconds": round(seconds, 3),
        "catalogue": settings.interventions.model_dump()["catalogue"],
        "strategies": strategies, "best_top_k": _best(strategies, "top_k_"),
        "best_random": _best(strategies, "random_"),
        "eligible": {name: int(eligible[:, j].sum()) for j, name in enumerate(catalogue.names)}, "notes": notes,
    }
    if truth_uri:
        summary["realised"] = _realised(settings, snapshot, table, selection, catalogue, eligible, truth_uri,
                                        strategies)
    return summary


def compare_strategies(selection: optimiser.Selection, proba: np.ndarray, value: np.ndarray, catalogue: Catalogue,
                       budget: float, eligible: np.ndarray) -> dict[str, dict[str, Any]]:
    """Expected outcome of the campaign, each top-k plan and random targeting per intervention."""
    plans = {"campaign": selection.choice, **selection.baselines}
    strategies = {name: optimiser.expected_outcome(choice, proba, value, catalogue) for name, choice in plans.items()}
    strategies.update({f"random_{name}": optimiser.random_outcome(proba, value, catalogue, budget, j, eligible[:, j])
                       for j, name in enumerate(catalogue.names)})
    return strategies


def customer_features(snapshot: Snapshot, customer_ids: pa.ChunkedArray, wanted: set[str]) -> pd.DataFrame:
    """The ``wanted`` features the snapshot has, for the given customers in their order."""
    columns = [CUSTOMER_ID, *sorted(wanted & set(snapshot.feature_set.names))]
    fs, path = storage.resolve(snapshot.data_uri)
    features = pq.read_table(path, filesystem=fs, columns=columns).to_pandas().set_index(CUSTOMER_ID)
    return features.reindex(customer_ids.to_pandas())


def eligibility(customers: pd.DataFrame, catalogue: Catalogue) -> tuple[np.ndarray, list[str]]:
    """(customers x interventions) bool: the intervention's ``eligible_if`` feature is 1. A feature
    the snapshot lacks makes everyone eligible, with a note."""
    eligible = np.ones((len(customers), len(catalogue.names)), dtype=bool)
    notes = []
    for j, feature in enumerate(catalogue.eligible_if):
        if feature in customers:
            eligible[:, j] = customers[feature].to_numpy(np.float64) == 1
        elif feature:
            notes.append(f"{catalogue.names[j]}: no '{feature}' in the snapshot, every customer treated as eligible")
    return eligible, notes


def target_table(scores: pa.Table, choice: np.ndarray, proba: np.ndarray, value: np.ndarray,
                 catalogue: Catalogue) -> pa.Table:
    """The contacted customers with their intervention, best expected net value first."""
    chosen = np.flatnonzero(choice != NO_CONTACT)
    j = choice[chosen]
    net = contact_value(proba[chosen], value[chosen], catalogue.success[j], catalogue.cost[j])
    saved_revenue = net + catalogue.cost[j]
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


def _realised(settings: Settings, snapshot: Snapshot, table: pa.Table, selection: optimiser.Selection,
              catalogue: Catalogue, eligible: np.ndarray, truth_uri: str,
              strategies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Realised churn reduction of the campaign, the top-k plans and random targeting."""
    days = snapshot.manifest.get("horizon_days") or settings.interventions.outcome_days
    as_of = dt.date.fromisoformat(str(snapshot.manifest["as_of"]))
    truth = realised.load_truth(truth_uri, table.column(CUSTOMER_ID), catalogue, as_of, days)
    out = {"truth": truth_uri, "window": list(truth.window),
           "goal_churn_reduction": settings.interventions.goal_churn_reduction,
           "campaign": realised.realised_outcome(selection.choice, truth)}
    out.update({name: realised.realised_outcome(choice, truth) for name, choice in selection.baselines.items()})
    out.update({f"random_{name}": realised.realised_random(truth, strategies[f"random_{name}"]["contacted"], j,
                                                           eligible[:, j])
                for j, name in enumerate(catalogue.names)})
    return out
