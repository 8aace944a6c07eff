"""What a contact is expected to do for a customer, from feature columns by name: the learnt drop
in churn probability per intervention and who is eligible for which. Shared by the campaign
planner (a snapshot's columns) and the serving route (one request's feature row)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ml.campaigns.optimiser import Catalogue

Column = Callable[[str], np.ndarray | None]
"""A feature's values by name (float64, NaN = missing), or None when the rows lack it."""


class UpliftPredictor(Protocol):
    """An uplift model's boosters, or their compiled form: ``predict`` gives (p_churn, drops)."""

    @property
    def interventions(self) -> list[str]: ...

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def uplift_effects(model: UpliftPredictor, X: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """(customers x catalogue) learnt drop in churn probability for rows laid out as
    ``model.feature_names``; an intervention the model never saw contacted gets no effect."""
    _, drops = model.predict(X.astype(np.float32, copy=False))
    effect = np.zeros((len(X), len(catalogue.names)))
    for j, name in enumerate(model.interventions):
        if name in catalogue.names:
            effect[:, catalogue.names.index(name)] = drops[:, j]
    return effect


def eligibility(column: Column, n: int, catalogue: Catalogue) -> tuple[np.ndarray, list[str]]:
    """(customers x interventions) bool: the intervention's ``eligible_if`` feature is 1. A feature
    the rows lack makes everyone eligible, with a note."""
    eligible = np.ones((n, len(catalogue.names)), dtype=bool)
    notes = []
    for j, feature in enumerate(catalogue.eligible_if):
        values = column(feature) if feature else None
        if values is not None:
            eligible[:, j] = values == 1
        elif feature:
            notes.append(f"{catalogue.names[j]}: no '{feature}' feature, every customer treated as eligible")
    return eligible, notes

