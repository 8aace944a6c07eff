"""The next best action a prediction answers with: the retention intervention of highest positive
expected net value for the customer (``value x drop in churn probability - cost``), or none, from
the same feature row the churn model scored (no second read). The drop is the uplift champion's
when one is registered and its features are in the served layout (its boosters compiled for ONNX
Runtime like the churn model's), else the catalogue's fixed success rate times the churn
probability, and the answer says which."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.settings import CampaignSettings, Settings
from features.feature_set import FeatureSet
from ml import registry
from ml.campaigns import optimiser
from ml.campaigns.effects import UpliftPredictor, eligibility, uplift_effects
from ml.campaigns.optimiser import NO_CONTACT, Catalogue
from ml.uplift.model import UpliftModel
from ml.uplift.registry import load_uplift
from ml.value import value_from_monthly
from serve_app.compiled import CompiledUplift, CompileError

log = logging.getLogger(__name__)

FIXED_RATES = "fixed success rates"


@dataclass(frozen=True)
class NextActions:
    """Chooses per row; built once per served churn model (its feature layout)."""

    catalogue: Catalogue
    campaign: CampaignSettings
    index: dict[str, int]
    uplift: UpliftPredictor | None
    uplift_columns: list[int]
    """Where the uplift model's inputs sit in the served rows, in its order (found once, at load)."""
    basis: str

    @classmethod
    def load(cls, settings: Settings, features: FeatureSet) -> NextActions:
        """With the uplift champion when it can read the served rows, else on fixed rates."""
        index = {name: i for i, name in enumerate(features.names)}
        catalogue = Catalogue.from_settings(settings.interventions)
        try:
            model, version = load_uplift(settings, registry.CHAMPION)
        except registry.ModelNotFound:
            return cls(catalogue, settings.campaign, index, None, [], FIXED_RATES)
        missing = sorted(set(model.feature_names) - set(index))
        if missing:
            log.warning("next best action on fixed rates: the uplift model needs features the served layout lacks",
                        extra={"uplift_version": version, "missing": missing[:5]})
            return cls(catalogue, settings.campaign, index, None, [], FIXED_RATES)
        return cls(catalogue, settings.campaign, index, _engine(model, settings.serve.engine),
                   [index[name] for name in model.feature_names], f"uplift model v{version}")

    def choose(self, X: np.ndarray, proba: np.ndarray) -> list[dict[str, Any]]:
        """One answer per row of ``X`` (laid out as the served FeatureSet)."""
        def column(name: str) -> np.ndarray | None:
            return X[:, self.index[name]].astype(np.float64) if name in self.index else None

        if self.uplift is None:
            effect = optimiser.fixed_rate_effects(proba, self.catalogue)
        else:
            effect = uplift_effects(self.uplift, X[:, self.uplift_columns], self.catalogue)
        value = value_from_monthly(column(self.campaign.value_feature), len(X), self.campaign)
        eligible, _ = eligibility(column, len(X), self.catalogue)
        choice, net = optimiser.best_actions(optimiser.expected_values(effect, value, self.catalogue, eligible))
        return [{"intervention": None if j == NO_CONTACT else self.catalogue.names[j],
                 "expected_churn_drop": 0.0 if j == NO_CONTACT else float(effect[i, j]),
                 "expected_net_value": float(v), "basis": self.basis}
                for i, (j, v) in enumerate(zip(choice.tolist(), net.tolist(), strict=True))]


def _engine(model: UpliftModel, engine: str) -> UpliftPredictor:
    """The boosters compiled for ONNX Runtime like the churn model (one call instead of one per
    booster), or as they are when settings ask for XGBoost or the compiled form fails its check."""
    if engine == "onnx":
        try:
            return CompiledUplift.from_model(model)
        except CompileError as exc:
            log.warning("uplift boosters served as they are: the compiled form failed", extra={"error": str(exc)})
    for booster in (model.baseline, *model.arms.values()):
        booster.set_param({"nthread": 1})
    return model
