"""Campaign selection without Ray or MLflow: the value computation, the guarantees of the greedy
multiple-choice knapsack (checked against brute force on small instances), its baselines, and
the realised churn reduction measured against a ground truth."""
from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.settings import InterventionSettings
from ml.campaigns import optimiser, realised
from ml.campaigns.optimiser import NO_CONTACT, Catalogue

CATALOGUE = Catalogue.from_settings(InterventionSettings())


def _instance(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.beta(1.2, 4.0, n), rng.lognormal(6.0, 0.8, n)


def _fixed(proba: np.ndarray) -> np.ndarray:
    return optimiser.fixed_rate_effects(proba, CATALOGUE)


def test_expected_net_value_is_probability_x_value_x_success_minus_cost():
    ev = optimiser.expected_values(_fixed(np.array([0.5, 0.1])), np.array([1000.0, 200.0]), CATALOGUE)
    for j, name in enumerate(CATALOGUE.names):
        item = InterventionSettings().catalogue[name]
        np.testing.assert_allclose(ev[:, j], [0.5 * 1000 * item.success_rate - item.cost,
                                              0.1 * 200 * item.success_rate - item.cost])


def test_expected_outcome_sums_the_chosen_interventions():
    outcome = optimiser.expected_outcome(np.array([1, NO_CONTACT]), _fixed(np.array([0.5, 0.1])),
                                         np.array([1000.0, 200.0]), CATALOGUE)
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
    selection = optimiser.select(_fixed(proba), proba, value, CATALOGUE, budget)
    ev = optimiser.expected_values(_fixed(proba), value, CATALOGUE)
    chosen = optimiser.expected_outcome(selection.choice, _fixed(proba), value, CATALOGUE)
    assert chosen["cost"] <= budget
    for j in range(len(CATALOGUE.names)):
        top_k = optimiser.plan_value(optimiser.top_k_plan(np.argsort(-proba), CATALOGUE.cost, budget, j), ev)
        random = optimiser.random_outcome(_fixed(proba), value, CATALOGUE, budget, j)
        assert chosen["expected_net_value"] >= top_k - 1e-6
        assert chosen["expected_net_value"] >= random["expected_net_value"] - 1e-6
        assert random["cost"] <= budget


def test_ineligible_customers_never_get_the_intervention():
    proba, value = _instance(3_000, 2)
    eligible = np.ones((3_000, len(CATALOGUE.names)), dtype=bool)
    eligible[::2, 0] = False  # every other customer gave no e-mail consent
    selection = optimiser.select(_fixed(proba), proba, value, CATALOGUE, 5_000.0, eligible)
    assert (selection.choice == 0).any() and not (selection.choice[::2] == 0).any()
    assert not (selection.baselines["top_k_email"][::2] == 0).any()


def test_an_unaffordable_best_upgrade_is_skipped_not_a_stop():
    ev = np.array([[0.0, 500.0], [20.0, 0.0], [15.0, 0.0]])  # customer 0: only the dear option
    cost = np.array([10.0, 100.0])
    assert optimiser.optimise(ev, cost, 30.0).tolist() == [NO_CONTACT, 0, 0]


def test_a_large_budget_gives_everyone_their_best_positive_option():
    proba, value = _instance(2_000, 5)
    ev = optimiser.expected_values(_fixed(proba), value, CATALOGUE)
    choice = optimiser.optimise(ev, CATALOGUE.cost, 1e12)
    best = np.where(ev.max(axis=1) > 0, ev.argmax(axis=1), NO_CONTACT)
    assert np.array_equal(choice, best)


def test_the_next_best_action_is_the_most_valuable_contact_or_none():
    ev = np.array([[1.0, 5.0, -2.0], [-1.0, -0.5, -3.0], [0.0, 0.0, 0.0]])
    action, value = optimiser.best_actions(ev)
    assert action.tolist() == [1, NO_CONTACT, NO_CONTACT] and value.tolist() == [5.0, 0.0, 0.0]


def test_learnt_effects_can_pick_a_cheaper_intervention_than_fixed_rates():
    proba, value = np.array([0.5]), np.array([1000.0])
    effect = np.array([[0.0, 0.2, 0.01, 0.01]])  # a call keeps this customer, a discount barely moves them
    ev = optimiser.expected_values(effect, value, CATALOGUE)
    assert optimiser.best_actions(ev)[0].tolist() == [CATALOGUE.names.index("call")]
    assert optimiser.best_actions(optimiser.expected_values(_fixed(proba), value, CATALOGUE))[0].tolist() == [
        CATALOGUE.names.index("discount")]


@pytest.fixture
def truth(tmp_path) -> realised.Truth:
    """Customers A-D of a plan, and Z who is not in it; B is saved by the call only."""
    ids = pa.array(["A", "B", "C", "D"])
    table = pa.table({
        "customer_id": ["D", "C", "B", "A", "Z"],
        "churn_date": pa.array([None, "2026-07-10", "2026-07-05", "2026-08-30", "2026-07-01"]).cast(pa.date32()),
        **{f"saved_by_{n}": [True, True, n == "call", True, True] for n in CATALOGUE.names},
    })
    pq.write_table(table, tmp_path / "truth.parquet")
    return realised.load_truth(str(tmp_path / "truth.parquet"), ids, CATALOGUE, dt.date(2026, 6, 30), 30)


def test_churners_are_the_customers_who_churn_within_the_window(truth):
    assert truth.churner.tolist() == [False, True, True, False]  # A churns too late, D never


def test_realised_reduction_counts_saved_churners_in_the_window(truth):
    plan = np.array([NO_CONTACT, 1, 0, NO_CONTACT])  # B gets the call that saves them, C an e-mail
    outcome = realised.realised_outcome(plan, truth, CATALOGUE.cost)
    assert (outcome["churners"], outcome["churners_saved"], outcome["churn_reduction"]) == (2, 2, 1.0)


def test_realised_cost_per_churner_saved_divides_the_contacts_cost(truth):
    plan = np.array([NO_CONTACT, 1, 0, NO_CONTACT])
    outcome = realised.realised_outcome(plan, truth, CATALOGUE.cost)
    assert outcome["cost_per_churner_saved"] == pytest.approx((CATALOGUE.cost[0] + CATALOGUE.cost[1]) / 2)


def test_a_random_plan_saves_its_share_of_the_churners(truth):
    assert realised.realised_random(truth, 2, 0, None, 0.5)["churners_saved"] == pytest.approx(2 * 1 / 4)


def test_the_churners_saved_objective_buys_contacts_that_do_not_pay_for_themselves():
    proba, value = _instance(2_000, 3)
    effect = _fixed(proba)
    by_value = optimiser.select(effect, proba, value / 50, CATALOGUE, 5_000.0)
    by_churn = optimiser.select(effect, proba, value / 50, CATALOGUE, 5_000.0, objective=optimiser.CHURNERS_SAVED)
    outcome = [optimiser.expected_outcome(s.choice, effect, value / 50, CATALOGUE) for s in (by_value, by_churn)]
    assert outcome[1]["expected_churners_saved"] > outcome[0]["expected_churners_saved"]
    assert outcome[0]["cost"] < outcome[1]["cost"] <= 5_000.0
    assert outcome[1]["expected_net_value"] < outcome[0]["expected_net_value"]


def test_an_unknown_objective_is_refused_naming_the_valid_ones():
    proba, value = _instance(10, 0)
    with pytest.raises(ValueError, match="net_value or churners_saved"):
        optimiser.select(_fixed(proba), proba, value, CATALOGUE, 100.0, objective="vibes")
