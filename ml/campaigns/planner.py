"""Campaign planning: a scores output + the intervention catalogue + each customer's expected
drop in churn per intervention (the uplift model's, or fixed rates) + a budget -> the target list
with its control group, and a summary against the fixed-rate plan, random and top-k-by-probability
targeting at the same budget.

Layout under ``<data>/campaigns/``::

    <output-id>/targets.parquet   customer_id, intervention, arm (the intervention or control), cost,
    <output-id>/targets.csv       probability, customer_value, expected_churn_drop, expected_net_value,
                                  expected_saved_revenue, risk_segment, top_reasons
    <output-id>/summary.json
    LATEST

The output id fingerprints the scores run, the budget, the catalogue, the value settings, the
truth used and the uplift model version, so a re-run with identical inputs reuses the completed
folder.
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
from features.sources import CONTROL
from ml import registry
from ml.campaigns import optimiser, realised
from ml.campaigns.effects import eligibility, uplift_effects
from ml.campaigns.optimiser import NO_CONTACT, Catalogue
from ml.scoring.batch import BatchScores, open_scores
from ml.scoring.score_table import PROBABILITY, REASONS, SEGMENT
from ml.uplift.model import UpliftModel
from ml.uplift.registry import load_uplift
from ml.value import customer_value, net_value

log = logging.getLogger(__name__)

TARGETS_PARQUET, TARGETS_CSV, SUMMARY = "targets.parquet", "targets.csv", "summary.json"
ARM = "arm"
CONTROL_ARM = -2
"""Arm code of a selected customer kept aside in the control group (beside ``NO_CONTACT``)."""


class CampaignError(ValueError):
    """A campaign that cannot be planned as asked; the message says why."""


@dataclass(frozen=True)
class CampaignPlan:
    output: outputs.Output
    summary: dict[str, Any]

    def read_targets(self) -> pd.DataFrame:
        fs, path = storage.resolve(storage.join(self.output.uri, TARGETS_PARQUET))
        return pq.read_table(path, filesystem=fs).to_pandas()


def campaigns_root(settings: Settings) -> str:
    return storage.join(settings.data_uri, "campaigns")


def open_campaign(settings: Settings, ref: str = "latest") -> CampaignPlan:
    """A planned campaign by id, ``latest`` or URI."""
    output = outputs.resolve(campaigns_root(settings), ref, "campaign", " (run `churn campaign` first)")
    return CampaignPlan(output, storage.read_json(storage.join(output.uri, SUMMARY)))


def default_truth(settings: Settings) -> str | None:
    """The generator's truth next to the generated raw data, if there is one."""
    uri = storage.join(settings.data_uri, "generated", "truth", "customers.parquet")
    return uri if storage.exists(uri) else None


FIXED_RATES = "none"
"""``uplift_ref`` that plans on the catalogue's fixed success rates even when an uplift model exists."""


def plan_campaign(settings: Settings, budget: float, scores_ref: str = "latest", truth_uri: str | None = None,
                  force: bool = False, uplift_ref: str = registry.CHAMPION) -> CampaignPlan:
    """Plan on the effects of the uplift model behind ``uplift_ref`` (alias or version; the
    fixed rates when there is none, or with ``FIXED_RATES``)."""
    scores = open_scores(settings, scores_ref)
    catalogue = Catalogue.from_settings(settings.interventions)
    if budget < float(catalogue.cost.min()):
        raise CampaignError(f"a budget of {budget:,.2f} cannot buy one contact: the cheapest intervention costs "
                            f"{catalogue.cost.min():,.2f}")
    uplift = None if uplift_ref == FIXED_RATES else effect_model(settings, uplift_ref)
    output_id = f"{scores.output.id}-b{budget:.10g}-" + fingerprint(
        settings.interventions.model_dump(exclude={"budget"}), settings.campaign.model_dump(), truth_uri,
        uplift.version if uplift else None)
    return CampaignPlan(*outputs.publish_summarised(
        campaigns_root(settings), output_id,
        lambda tmp: _plan_into(tmp, settings, scores, catalogue, budget, truth_uri, output_id, uplift),
        SUMMARY, force))


@dataclass(frozen=True)
class EffectModel:
    model: UpliftModel
    version: str


def effect_model(settings: Settings, ref: str = registry.CHAMPION) -> EffectModel | None:
    """The uplift model behind the alias, or None when none holds it (the plan then uses fixed
    rates). An explicit version that does not exist is an error."""
    try:
        model, version = load_uplift(settings, ref)
    except registry.ModelNotFound:
        if str(ref).isdigit():
            raise CampaignError(f"no uplift model version {ref} is registered (see `churn runs`)") from None
        return None
    return EffectModel(model, version)


def _plan_into(out: str, settings: Settings, scores: BatchScores, catalogue: Catalogue, budget: float,
               truth_uri: str | None, output_id: str, uplift: EffectModel | None) -> dict[str, Any]:
    table = scores.read_table([CUSTOMER_ID, PROBABILITY, SEGMENT, REASONS])
    proba = table.column(PROBABILITY).to_numpy().astype(np.float64)
    snapshot = open_snapshot(settings, scores.summary["snapshot_id"])
    wanted = {settings.campaign.value_feature, *filter(None, catalogue.eligible_if)}
    if uplift:
        wanted |= set(uplift.model.feature_names)
    customers = customer_features(snapshot, table.column(CUSTOMER_ID), wanted)
    value = customer_value(customers, settings.campaign)
    eligible, notes = eligibility(lambda name: _column(customers, name), len(customers), catalogue)
    fixed = optimiser.fixed_rate_effects(proba, catalogue)
    if uplift:
        X = customers[uplift.model.feature_names].to_numpy(dtype="float32")
        effect, basis = uplift_effects(uplift.model, X, catalogue), f"uplift model v{uplift.version}"
    else:
        effect, basis = fixed, "fixed success rates"
        notes.append("no uplift model used: each contact keeps the catalogue's fixed share of would-be churners "
                     "(`churn uplift` learns who each intervention keeps; the plan uses its champion)")
    share = settings.interventions.control_share
    started = time.perf_counter()
    objective = settings.interventions.objective
    selection = optimiser.select(effect, proba, value, catalogue, budget / (1 - share), eligible, objective)
    seed = int(output_id.rsplit("-", 1)[-1][:8], 16)
    arms = control_group(selection.choice, catalogue.cost, budget, share, np.random.default_rng(seed))
    seconds = time.perf_counter() - started
    log.info("campaign selected", extra={"basis": basis, "strategy": selection.strategy, "seconds": round(seconds, 2)})
    targets = target_table(table, selection.choice, arms, effect, value, catalogue)
    _write_table(targets, storage.join(out, TARGETS_PARQUET), storage.join(out, TARGETS_CSV))

    contacted = np.where(arms == CONTROL_ARM, NO_CONTACT, selection.choice)
    plans = {"campaign": contacted,
             "fixed_rate": optimiser.select(fixed, proba, value, catalogue, budget, eligible, objective).choice,
             **optimiser.select(effect, proba, value, catalogue, budget, eligible, objective).baselines}
    strategies = compare_strategies(plans, effect, value, catalogue, budget, eligible)
    summary = {
        "run_id": output_id, "scores_run": scores.output.id, "snapshot_id": scores.summary["snapshot_id"],
        "as_of": str(snapshot.manifest["as_of"]),
        "model_version": scores.summary["model_version"], "basis": basis, "objective": objective,
        "uplift_version": uplift.version if uplift else None, "budget": budget, "customers": len(proba),
        "strategy": selection.strategy, "selection_seconds": round(seconds, 3),
        "control_group": {"share": share, "customers": int((arms == CONTROL_ARM).sum()),
                          "contacted": int((contacted != NO_CONTACT).sum())},
        "catalogue": settings.interventions.model_dump()["catalogue"],
        "strategies": strategies, "best_top_k": _best(strategies, "top_k_"),
        "best_random": _best(strategies, "random_"),
        "eligible": {name: int(eligible[:, j].sum()) for j, name in enumerate(catalogue.names)}, "notes": notes,
    }
    if truth_uri:
        summary["realised"] = _realised(settings, snapshot, table, plans, catalogue, eligible, truth_uri,
                                        strategies, proba, value, budget)
    return summary


def control_group(choice: np.ndarray, cost: np.ndarray, budget: float, share: float,
                  gen: np.random.Generator) -> np.ndarray:
    """Arm per customer: ``CONTROL_ARM`` for a random ``share`` of the selected (and, when the rest
    would cost more than ``budget``, as many more random ones as it takes), the chosen intervention
    for the others, ``NO_CONTACT`` for the unselected."""
    selected = gen.permutation(np.flatnonzero(choice != NO_CONTACT))
    held = round(share * selected.size)
    rest = selected[held:]
    kept = rest[np.cumsum(cost[choice[rest]]) <= budget]
    arms = np.full(len(choice), NO_CONTACT)
    arms[selected] = CONTROL_ARM
    arms[kept] = choice[kept]
    return arms


def compare_strategies(plans: dict[str, np.ndarray], effect: np.ndarray, value: np.ndarray, catalogue: Catalogue,
                       budget: float, eligible: np.ndarray) -> dict[str, dict[str, Any]]:
    """Expected outcome (under the campaign's effects) of each plan and of random targeting per
    intervention."""
    strategies = {name: optimiser.expected_outcome(choice, effect, value, catalogue) for name, choice in plans.items()}
    strategies.update({f"random_{name}": optimiser.random_outcome(effect, value, catalogue, budget, j, eligible[:, j])
                       for j, name in enumerate(catalogue.names)})
    return strategies


def customer_features(snapshot: Snapshot, customer_ids: pa.ChunkedArray, wanted: set[str]) -> pd.DataFrame:
    """The ``wanted`` features the snapshot has, for the given customers in their order."""
    columns = [CUSTOMER_ID, *sorted(wanted & set(snapshot.feature_set.names))]
    fs, path = storage.resolve(snapshot.data_uri)
    features = pq.read_table(path, filesystem=fs, columns=columns).to_pandas().set_index(CUSTOMER_ID)
    return features.reindex(customer_ids.to_pandas())


def target_table(scores: pa.Table, choice: np.ndarray, arms: np.ndarray, effect: np.ndarray, value: np.ndarray,
                 catalogue: Catalogue) -> pa.Table:
    """The selected customers, best expected net value first: the intervention chosen for each, the
    arm they are in (that intervention, or the control group: not contacted, no cost)."""
    chosen = np.flatnonzero(choice != NO_CONTACT)
    j = choice[chosen]
    net = net_value(effect[chosen, j], value[chosen], catalogue.cost[j])
    order = np.argsort(-net, kind="stable")
    rows, j = chosen[order], j[order]
    control = arms[rows] == CONTROL_ARM
    names = np.array(catalogue.names, dtype=object)
    return pa.table({
        CUSTOMER_ID: scores.column(CUSTOMER_ID).take(rows),
        "intervention": pa.array(names[j], pa.string()),
        ARM: pa.array(np.where(control, CONTROL, names[j]), pa.string()),
        "cost": np.where(control, 0.0, catalogue.cost[j]),
        PROBABILITY: scores.column(PROBABILITY).take(rows),
        "customer_value": value[rows],
        "expected_churn_drop": effect[rows, j],
        "expected_net_value": net[order],
        "expected_saved_revenue": net[order] + catalogue.cost[j],
        SEGMENT: scores.column(SEGMENT).take(rows),
        REASONS: scores.column(REASONS).take(rows),
    })


def _column(customers: pd.DataFrame, name: str) -> np.ndarray | None:
    return customers[name].to_numpy(np.float64) if name in customers else None


def _write_table(table: pa.Table, parquet_uri: str, csv_uri: str) -> None:
    fs, path = storage.resolve(parquet_uri)
    pq.write_table(table, path, filesystem=fs)
    fs, path = storage.resolve(csv_uri)
    with fs.open_output_stream(path) as sink:
        pacsv.write_csv(table, sink)


def _best(strategies: dict[str, dict[str, Any]], prefix: str) -> str:
    names = [k for k in strategies if k.startswith(prefix)]
    return max(names, key=lambda k: strategies[k]["expected_net_value"])


def _realised(settings: Settings, snapshot: Snapshot, table: pa.Table, plans: dict[str, np.ndarray],
              catalogue: Catalogue, eligible: np.ndarray, truth_uri: str, strategies: dict[str, dict[str, Any]],
              proba: np.ndarray, value: np.ndarray, budget: float) -> dict[str, Any]:
    """Realised churn reduction of every plan, of random targeting, and of the ceiling: the
    fixed-rate plan with each customer's true uplift in place of the rates."""
    days = snapshot.manifest.get("horizon_days") or settings.interventions.outcome_days
    as_of = dt.date.fromisoformat(str(snapshot.manifest["as_of"]))
    truth = realised.load_truth(truth_uri, table.column(CUSTOMER_ID), catalogue, as_of, days)
    ceiling = optimiser.select(proba[:, None] * truth.uplift, proba, value, catalogue, budget,
                               eligible, settings.interventions.objective).choice if truth.uplift is not None else None
    out: dict[str, Any] = {"truth": truth_uri, "window": list(truth.window),
                           "goal_churn_reduction": settings.interventions.goal_churn_reduction}
    out.update({name: realised.realised_outcome(choice, truth, catalogue.cost) for name, choice in plans.items()})
    if ceiling is not None:
        out["ceiling"] = realised.realised_outcome(ceiling, truth, catalogue.cost)
    out.update({f"random_{name}": realised.realised_random(truth, strategies[f"random_{name}"]["contacted"], j,
                                                           eligible[:, j], catalogue.cost[j])
                for j, name in enumerate(catalogue.names)})
    return out
