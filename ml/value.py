"""Expected value of retention contacts: probability x customer value x success rate - cost."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.settings import CampaignSettings


def customer_value(features: pd.DataFrame, campaign: CampaignSettings) -> np.ndarray:
    """Revenue at stake per customer: the value feature x months, else the default value."""
    monthly = features[campaign.value_feature].to_numpy(dtype="float64") if campaign.value_feature in features else None
    return value_from_monthly(monthly, len(features), campaign)


def value_from_monthly(monthly: np.ndarray | None, n: int, campaign: CampaignSettings) -> np.ndarray:
    """``customer_value`` from the value feature's column (None when the rows lack it)."""
    if monthly is None:
        return np.full(n, campaign.default_value)
    return np.where(np.isnan(monthly), campaign.default_value, monthly * campaign.value_months)


def contact_value(proba: np.ndarray, value: np.ndarray, success_rate: float | np.ndarray,
                  cost: float | np.ndarray) -> np.ndarray:
    """Expected net value of contacting each customer (broadcasts: one rate and cost, or one per intervention)."""
    return net_value(proba * success_rate, value, cost)


def net_value(effect: np.ndarray, value: np.ndarray, cost: float | np.ndarray) -> np.ndarray:
    """Value of the churn a contact prevents (``effect``: drop in churn probability) minus its cost."""
    return value * effect - cost


def top_k_value(proba: np.ndarray, value: np.ndarray, campaign: CampaignSettings,
                outcome: np.ndarray | None = None) -> dict[str, float]:
    """Value of contacting the top ``top_fraction`` by probability vs. the same number at random.

    With ``outcome`` (true labels) the value is the realised one (only real churners can be saved),
    otherwise the expected one under the model's probabilities.
    """
    k = max(1, round(len(proba) * campaign.top_fraction))
    basis = proba if outcome is None else outcome.astype("float64")
    per_customer = contact_value(basis, value, campaign.success_rate, campaign.contact_cost)
    top = np.argsort(-proba, kind="stable")[:k]
    model_value = float(per_customer[top].sum())
    random_value = float(per_customer.mean() * k)
    return {"k": k, "model": model_value, "random": random_value, "gain_vs_random": model_value - random_value}
