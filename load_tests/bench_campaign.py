"""Campaign selection time for a million customers: the greedy multiple-choice knapsack over the
settings' intervention catalogue, with the top-k baselines it is compared against.

    python -m load_tests.bench_campaign --customers 1000000 --budget 50000

Probabilities and customer values are drawn from skewed distributions like a scored population's.
Writes ``load_tests/results/campaign.json``: seconds of ``optimiser.optimise`` alone and of
``optimiser.select`` (optimise + the top-k plans + picking the best), per budget, with the plan's
cost, contacts and expected value against the best top-k and random plans.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np

from core.settings import get_settings
from load_tests import common
from ml.campaigns import optimiser
from ml.campaigns.optimiser import Catalogue

RESULT = Path(__file__).parent / "results" / "campaign.json"


def population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Churn probabilities (mean about 0.15) and 12-month values (monthly price 10..150)."""
    rng = np.random.default_rng(seed)
    return rng.beta(1.2, 6.5, n), 12 * np.clip(rng.lognormal(3.8, 0.5, n), 10, 150)


def timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def one_budget(proba: np.ndarray, value: np.ndarray, catalogue: Catalogue, budget: float) -> dict:
    effect = optimiser.fixed_rate_effects(proba, catalogue)
    ev = optimiser.expected_values(effect, value, catalogue)
    optimise_s, _ = timed(optimiser.optimise, ev, catalogue.cost, budget)
    select_s, selection = timed(optimiser.select, effect, proba, value, catalogue, budget)
    plan = optimiser.expected_outcome(selection.choice, effect, value, catalogue)
    top_k = max(optimiser.expected_outcome(c, effect, value, catalogue)["expected_net_value"]
                for c in selection.baselines.values())
    random = max(optimiser.random_outcome(effect, value, catalogue, budget, j)["expected_net_value"]
                 for j in range(len(catalogue.names)))
    return {"budget": budget, "optimise_s": round(optimise_s, 3), "select_s": round(select_s, 3),
            "strategy": selection.strategy, "cost": round(plan["cost"], 2), "contacted": plan["contacted"],
            "within_budget": plan["cost"] <= budget, "by_intervention": plan["by_intervention"],
            "expected_net_value": round(plan["expected_net_value"]), "best_top_k_value": round(top_k),
            "best_random_value": round(random)}


def main() -> None:
    parser = common.parser(__doc__, RESULT, scratch=False)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--budget", type=float, action="append", help="Repeatable [default: 50000 and 1000000].")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    catalogue = Catalogue.from_settings(get_settings().interventions)
    proba, value = population(args.customers, args.seed)
    load_before = os.getloadavg()[0]
    runs = [one_budget(proba, value, catalogue, budget) for budget in args.budget or [50_000.0, 1_000_000.0]]
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "customers": args.customers, "interventions": list(catalogue.names), "runs": runs,
        "machine": {**common.machine(), "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]},
    }
    common.save(report, args.result)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
