"""Campaign selection: the value computation, the guarantees of the greedy multiple-choice
knapsack (checked against brute force on small instances), and a run on real scores with a
ground truth to measure the realised churn reduction."""
from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.settings import CampaignSettings, InterventionSettings
from ml.campaigns import optimiser, realised
from ml.campaigns.optimiser import NO_CONTACT, Catalogue
from ml.campaigns.planner import plan_campaign
from ml.scoring import batch

CATALOGUE = Catalogue.from_settings(InterventionSettings())


def _instance(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.beta(1.2, 4.0, n), rng.lognormal(6.0, 0.8, n)


def test_expected_net_value_is_probability_x_value_x_success_minus_cost():
    ev = optimiser.expected_values(np.array([0.5, 0.1]), np.array([1000.0, 200.0]), CATALOGUE)
    for j, name in enumerate(CATALOGUE.names):
        item = InterventionSettings().catalogue[name]
        np.testing.assert_allclose(ev[:, j], [0.5 * 1000 * item.success_rate - item.cost,
                                              0.1 * 200 * item.success_rate - item.cost])
    outcome = optimiser.expected_outcome(np.array([1, NO_CONTACT]), np.array([0.5, 0.1]), np.array([1000.0, 200.0]),
                                         CATALOGUE)
    call = InterventionSettings().catalogue["call"]
    assert outcome["expected_saved_revenue"] == pytest.approx(0.5 * 1000 * call.success_rate)
    assert outcome["expected_churners_saved"] == pytest.approx(0.5 * call.success_rate)
    assert outcome["expected_net_value"] == pytest.approx(0.5 * 1000 * call.success_rate - call.cost)
    assert outcome["by_intervention"] == {"email": 0, "call": 1, "discount": 0, "account_manager": 0}


def _brute_force(ev: np.ndarray, cost: np.ndarray, budget: float) -> float:
    best = 0.0
    for plan in itertools.product(range(-1, ev.shape[1]), repeat=ev.shape[0]):
        choice = np.array(plan)
        if optimiser.plan_cost(choice, cost) <= budget:
            best = max(best, optimiser.plan_value(choice, ev))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_greedy_respects_the_budget_and_is_near_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    n, m = 6, 3
    cost = rng.uniform(1, 10, m)
    ev = rng.normal(3, 4, (n, m))
    budget = float(rng.uniform(2, 25))
    choice = optimiser.optimise(ev, cost, budget)
    assert choice.shape == (n,) and set(choice) <= set(range(-1, m))  # one intervention at most
    assert optimiser.plan_cost(choice, cost) <= budget
    greedy, optimum = optimiser.plan_value(choice, ev), _brute_force(ev, cost, budget)
    assert greedy <= optimum + 1e-9
    assert greedy >= optimum - ev.max()  # the LP-greedy bound: at most one upgrade's value lost
    assert np.all(ev[choice >= 0, choice[choice >= 0]] > 0)  # never a contact of negative value


@pytest.mark.parametrize("budget", [5.0, 200.0, 5_000.0, 50_000.0, 1e9])
@pytest.mark.parametrize("seed", [0, 1])
def test_selection_beats_top_k_and_random_at_the_same_budget(budget, seed):
    proba, value = _instance(5_000, seed)
    selection = optimiser.select(proba, value, CATALOGUE, budget)
    ev = optimiser.expected_values(proba, value, CATALOGUE)
    chosen = optimiser.expected_outcome(selection.choice, proba, value, CATALOGUE)
    assert chosen["cost"] <= budget
    for j, name in enumerate(CATALOGUE.names):
        top_k = optimiser.plan_value(optimiser.top_k_plan(np.argsort(-proba), CATALOGUE.cost, budget, j), ev)
        random = optimiser.random_outcome(proba, value, CATALOGUE, budget, j)
        assert chosen["expected_net_value"] >= top_k - 1e-6
        assert chosen["expected_net_value"] >= random["expected_net_value"] - 1e-6
        assert random["cost"] <= budget


def test_ineligible_customers_never_get_the_intervention():
    proba, value = _instance(3_000, 2)
    eligible = np.ones((3_000, len(CATALOGUE.names)), dtype=bool)
    eligible[::2, 0] = False  # every other customer gave no e-mail consent
    selection = optimiser.select(proba, value, CATALOGUE, 5_000.0, eligible)
    assert (selection.choice == 0).any() and not (selection.choice[::2] == 0).any()
    assert not (selection.baselines["top_k_email"][::2] == 0).any()


def test_an_unaffordable_best_upgrade_is_skipped_not_a_stop():
    ev = np.array([[0.0, 500.0], [20.0, 0.0], [15.0, 0.0]])  # customer 0: only the dear option
    cost = np.array([10.0, 100.0])
    assert optimiser.optimise(ev, cost, 30.0).tolist() == [NO_CONTACT, 0, 0]


def test_a_large_budget_gives_everyone_their_best_positive_option():
    proba, value = _instance(2_000, 5)
    ev = optimiser.expected_values(proba, value, CATALOGUE)
    choice = optimiser.optimise(ev, CATALOGUE.cost, 1e12)
    best = np.where(ev.max(axis=1) > 0, ev.argmax(axis=1), NO_CONTACT)
    assert np.array_equal(choice, best)


def test_realised_reduction_counts_saved_churners_in_the_window(tmp_path):
    ids = pa.array(["A", "B", "C", "D"])
    truth = pa.table({
        "customer_id": ["D", "C", "B", "A", "Z"],
        "churn_date": pa.array([None, "2026-07-10", "2026-07-05", "2026-08-30", "2026-07-01"]).cast(pa.date32()),
        **{f"saved_by_{n}": [True, True, n == "call", True, True] for n in CATALOGUE.names},
    })
    pq.write_table(truth, tmp_path / "truth.parquet")
    t = realised.load_truth(str(tmp_path / "truth.parquet"), ids, CATALOGUE, dt.date(2026, 6, 30), 30)
    assert t.churner.tolist() == [False, True, True, False]  # A churns too late, D never
    plan = np.array([NO_CONTACT, 1, 0, NO_CONTACT])  # B gets the call that saves them, C an e-mail
    assert realised.realised_outcome(plan, t) == {"churners": 2, "churners_saved": 2, "churn_reduction": 1.0}
    assert realised.realised_random(t, 2, 0)["churners_saved"] == pytest.approx(2 * 1 / 4)


@pytest.fixture
def scores(ray_cluster, settings, tiny_snapshot, champion):
    return batch.score_snapshot(settings)


def _truth_for(snapshot, path) -> str:
    """A truth table for the tiny snapshot: its labels are the churners, each intervention saves
    a churner with its catalogue success rate."""
    frame = snapshot.to_pandas()
    rng = np.random.default_rng(0)
    churn = np.where(frame["label"] == 1, pd.Timestamp("2026-07-15"), pd.NaT)
    columns = {"customer_id": frame["customer_id"], "churn_date": pd.to_datetime(churn).date}
    for name, item in InterventionSettings().catalogue.items():
        columns[f"saved_by_{name}"] = (frame["label"] == 1) & (rng.random(len(frame)) < item.success_rate)
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False), path)
    return str(path)


@pytest.mark.slow
def test_campaign_run_writes_a_target_list_within_budget(settings, tiny_snapshot, scores, tmp_path):
    truth = _truth_for(tiny_snapshot, tmp_path / "truth.parquet")
    result = plan_campaign(settings, 2_000.0, truth_uri=truth)
    targets = result.read_targets()
    s = result.summary
    assert targets["cost"].sum() <= 2_000.0 and targets["customer_id"].is_unique
    assert len(targets) == s["strategies"]["campaign"]["contacted"] > 0
    assert targets["expected_net_value"].is_monotonic_decreasing and (targets["expected_net_value"] > 0).all()
    assert set(targets["intervention"]) <= set(CATALOGUE.names)
    campaign = s["strategies"]["campaign"]["expected_net_value"]
    assert campaign >= s["strategies"][s["best_top_k"]]["expected_net_value"]
    assert campaign >= s["strategies"][s["best_random"]]["expected_net_value"]
    # value: monthly price x months, the default only where the price is missing
    frame = tiny_snapshot.to_pandas().set_index("customer_id")
    expected_value = frame.loc[targets["customer_id"], "monthly_price"].to_numpy() * CampaignSettings().value_months
    np.testing.assert_allclose(targets["customer_value"], expected_value, rtol=1e-6)

    r = s["realised"]
    assert r["campaign"]["churners"] == int(frame["label"].sum())
    assert r["campaign"]["churn_reduction"] > r[f"random_{s['best_random'].removeprefix('random_')}"]["churn_reduction"]

    again = plan_campaign(settings, 2_000.0, truth_uri=truth)
    assert (again.output.id, again.output.built, again.summary) == (result.output.id, False, s)
    assert plan_campaign(settings, 1_000.0, truth_uri=truth).output.id != result.output.id
