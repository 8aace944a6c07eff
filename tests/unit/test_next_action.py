"""The next best action of one feature row, without Ray, Redis or MLflow: the intervention of
highest positive net value, none when nothing is worth its cost, eligibility, and the uplift
model's drops in place of the fixed rates."""
from __future__ import annotations

import numpy as np
import xgboost as xgb

from core.settings import CampaignSettings, InterventionSettings
from ml.campaigns.optimiser import Catalogue
from ml.uplift.model import UpliftModel
from serve_app.next_action import FIXED_RATES, NextActions

CATALOGUE = Catalogue.from_settings(InterventionSettings())
INDEX = {"monthly_price": 0, "email_opt_in": 1, "tickets_30d": 2}


def _fixed() -> NextActions:
    return NextActions(CATALOGUE, CampaignSettings(), INDEX, None, [], FIXED_RATES)


def _row(price: float, opt_in: float) -> list[float]:
    return [price, opt_in, 1.0]


def test_a_valuable_risky_customer_gets_the_intervention_of_highest_net_value():
    (action,) = _fixed().choose(np.array([_row(100.0, 1.0)]), np.array([0.9]))
    value = 100.0 * CampaignSettings().value_months
    net = value * 0.9 * CATALOGUE.success - CATALOGUE.cost
    assert action["intervention"] == CATALOGUE.names[int(net.argmax())]
    assert np.isclose(action["expected_net_value"], net.max())
    assert action["basis"] == FIXED_RATES


def test_a_customer_no_contact_pays_for_gets_no_action():
    (action,) = _fixed().choose(np.array([_row(1.0, 1.0)]), np.array([0.01]))
    assert action == {"intervention": None, "expected_churn_drop": 0.0, "expected_net_value": 0.0,
                      "basis": FIXED_RATES}


def test_email_is_never_chosen_without_consent():
    # cheap e-mail is the best buy for a low-value customer, unless they did not opt in
    opted_in, not_opted_in = _fixed().choose(np.array([_row(20.0, 1.0), _row(20.0, 0.0)]), np.array([0.3, 0.3]))
    assert opted_in["intervention"] == "email" and not_opted_in["intervention"] != "email"


def _constant_booster(margin: float) -> xgb.Booster:
    """A booster that predicts ``base_margin + margin`` whatever the row."""
    X = np.zeros((8, 2), dtype=np.float32)
    return xgb.train({"objective": "binary:logistic", "base_score": 0.5, "max_depth": 1, "eta": 1.0},
                     xgb.DMatrix(X, label=np.full(8, 1 / (1 + np.exp(-margin)))), 1)


def test_the_uplift_models_drop_replaces_the_fixed_rate():
    model = UpliftModel(["monthly_price", "tickets_30d"], _constant_booster(0.0),
                        {"discount": _constant_booster(0.0)}, {"discount": 0.5})
    actions = NextActions(CATALOGUE, CampaignSettings(), INDEX, model, [INDEX[name] for name in model.feature_names],
                          "uplift model v1")
    X = np.array([_row(100.0, 1.0)], dtype=np.float32)
    (action,) = actions.choose(X, np.array([0.99]))
    _, drops = model.predict(X[:, [0, 2]])
    assert action["intervention"] == "discount" and action["basis"] == "uplift model v1"
    assert np.isclose(action["expected_churn_drop"], drops[0, 0])
    assert np.isclose(action["expected_net_value"], 1200.0 * drops[0, 0] - CATALOGUE.cost[CATALOGUE.names.index(
        "discount")])
