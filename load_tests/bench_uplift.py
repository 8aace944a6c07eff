"""Campaigns by uplift against today's fixed-rate plan, the ceiling and random targeting, on
generated data whose truth is known, and the campaign measured against its control group.

    python -m load_tests.bench_uplift --customers 5000 --budget-per-customer 10

Runs the platform's own steps (``churn ...``, each a fresh process, on a scratch state folder):
generate -> etl -> train -> promote -> score -> uplift (registered, gate recorded, not promoted)
-> campaigns by the new uplift model and on fixed rates, same budget, under each objective (net
value; churners saved) -> the world after the uplift campaign that maximises churners saved
(``generate --campaign``) -> measure. Side by side per objective, from the uplift plan's realised
block (the generator's truth, same budget): the uplift plan (control group aside), the fixed-rate
plan, the ceiling (churn risk x each customer's true uplift), the best random and top-k plans.
Training times are the MLflow run durations of the churn model and of the uplift model. The
outcome labels after the campaign are checked against those without it, per arm.
Writes ``load_tests/results/uplift_<customers>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from core.schema import CUSTOMER_ID, LABEL
from core.settings import Settings
from features.snapshot import open_snapshot
from features.sources import CONTROL
from load_tests import common
from ml import registry
from ml.campaigns.measurement import measurements_root
from ml.campaigns.planner import ARM, CampaignPlan, open_campaign

RESULTS = Path(__file__).parent / "results"
CHURN = [sys.executable, "-m", "ray_jobs.cli"]


def main() -> None:
    parser = common.parser(__doc__, None)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget-per-customer", type=float, default=10.0)
    args = parser.parse_args()
    args.result = args.result or RESULTS / f"uplift_{args.customers}.json"
    common.run_in_scratch(run, args)


def run(scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    state = scratch / "state"
    env = {**os.environ, "CHURN_STATE_DIR": str(state)}
    settings = Settings(state_dir=state)
    budget = args.budget_per_customer * args.customers
    world = ["--customers", str(args.customers), "--days", str(args.days), "--seed", str(args.seed)]
    steps: dict[str, float] = {}

    def churn(name: str, *argv: str) -> None:
        started = time.perf_counter()
        print(f"== churn {' '.join(argv)}", flush=True)
        subprocess.run([*CHURN, *argv], env=env, check=True, stdout=subprocess.DEVNULL)
        steps[name] = round(time.perf_counter() - started, 1)

    load_before = os.getloadavg()[0]
    churn("generate", "generate", *world)
    churn("etl", "etl")
    churn("train", "train")
    churn("promote", "promote")
    churn("score", "score")
    churn("uplift", "uplift", "--no-promote")
    client = registry.setup(settings)
    uplift = registry.version_by_alias(client, settings, registry.CHALLENGER, settings.registry.uplift_model_name)
    assert uplift is not None, "churn uplift registered no challenger"
    plans, realised = {}, {}
    for objective in ("net_value", "churners_saved"):
        churn(f"campaign_fixed_{objective}", "campaign", "--budget", f"{budget:g}", "--uplift", "none",
              "--objective", objective)
        fixed = open_campaign(settings)
        churn(f"campaign_uplift_{objective}", "campaign", "--budget", f"{budget:g}", "--uplift",
              str(uplift.version), "--objective", objective)
        plans[objective] = open_campaign(settings)
        realised[objective] = _compare(plans[objective].summary, fixed.summary)
    plan = plans["churners_saved"]
    churn("generate_after", "generate", *world, "--campaign", plan.output.id, "--out", str(state / "after"))
    churn("measure", "measure", "--campaign", plan.output.id, "--raw", str(state / "after" / "raw"))
    measured = json.loads(next(Path(measurements_root(settings)).glob(f"{plan.output.id}-*/measurement.json"))
                          .read_text())
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "customers": args.customers, "days": args.days, "seed": args.seed, "budget": budget,
        "uplift_model": {"version": uplift.version, **{k: uplift.tags.get(k) for k in
                                                       ("gate", "holdout_qini", "holdout_qini_risk")}},
        "realised": realised,
        "goal_churn_reduction": plan.summary["realised"]["goal_churn_reduction"],
        "measured": {"campaign": plan.output.id, "objective": "churners_saved",
                     "labels_after_vs_before": _label_changes(settings, plan, measured["outcome_snapshot"]),
                     "churners_saved": measured["overall"]["churners_saved"],
                     "churn_reduction": measured["churn_reduction"], "truth": measured.get("realised"),
                     "roi": measured["overall"]["roi"]},
        "training_seconds": _training_seconds(client, settings),
        "step_seconds": steps,
        "machine": {**common.machine(), "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]},
    }


def _outcome(o: dict[str, Any]) -> dict[str, Any]:
    return {k: o[k] for k in ("churners", "churners_saved", "churn_reduction", "cost", "cost_per_churner_saved")}


def _compare(uplift_plan: dict[str, Any], fixed_plan: dict[str, Any]) -> dict[str, Any]:
    """One objective's plans on the truth: the uplift plan's realised block, and today's campaign."""
    r = uplift_plan["realised"]
    best_random = max((v for k, v in r.items() if k.startswith("random_")), key=lambda o: o["churn_reduction"])
    ours = r["campaign"]["churn_reduction"]
    return {
        "uplift_plan": _outcome(r["campaign"]), "fixed_rate_plan": _outcome(r["fixed_rate"]),
        "fixed_rate_campaign_with_control": _outcome(fixed_plan["realised"]["campaign"]),
        "ceiling": _outcome(r["ceiling"]), "best_top_k": _outcome(r[uplift_plan["best_top_k"]]),
        "best_random": _outcome(best_random),
        "uplift_over_fixed_rate": _ratio(ours, r["fixed_rate"]["churn_reduction"]),
        "uplift_over_ceiling": _ratio(ours, r["ceiling"]["churn_reduction"]),
    }


def _ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 3) if theirs else None


def _label_changes(settings: Settings, plan: CampaignPlan, outcome_id: str) -> dict[str, int]:
    """The outcome labels of the world after the campaign against those of the world without it,
    per arm: only contacted churners the response model keeps may change, from 1 to 0."""
    before = open_snapshot(settings, plan.summary["snapshot_id"]).to_pandas().set_index(CUSTOMER_ID)[LABEL]
    after = open_snapshot(settings, outcome_id).to_pandas().set_index(CUSTOMER_ID)[LABEL]
    targets = plan.read_targets().set_index(CUSTOMER_ID)
    control = targets.index[targets[ARM] == CONTROL]
    contacted = targets.index[targets[ARM] != CONTROL]
    rest = before.index.difference(targets.index)
    return {"contacted_kept": int(((before[contacted] == 1) & (after[contacted] == 0)).sum()),
            "contacted_other_changes": int(((before[contacted] == 0) & (after[contacted] == 1)).sum()),
            "control_changed": int((before[control] != after[control]).sum()),
            "untargeted_changed": int((before[rest] != after.reindex(rest)).sum())}


def _training_seconds(client: MlflowClient, settings: Settings) -> dict[str, float]:
    """Wall time of the latest churn-model training run and of the latest uplift run."""
    def duration(name: str) -> float:
        run = client.search_runs([client.get_experiment_by_name(settings.registry.experiment).experiment_id],
                                 f"attributes.run_name = '{name}'", order_by=["attributes.start_time DESC"],
                                 max_results=1)[0]
        return round((run.info.end_time - run.info.start_time) / 1000, 1)

    train, uplift = duration("train"), duration("uplift")
    return {"churn_model": train, "uplift_model": uplift, "ratio": round(uplift / train, 2)}


if __name__ == "__main__":
    main()
