"""The uplift model: churn without contact, and what each intervention changes in it.

``baseline`` gives the margin ``m(x)`` of churning within the outcome window without contact.
Each intervention's booster was trained on the customers who got it, starting from
``m(x) + log(1 - prior)`` (the catalogue's success rate as a prior: a contact keeps that share of
would-be churners), and adds only what the contacts showed. So the churn probability under
intervention j is ``sigmoid(m(x) + log(1 - prior_j) + f_j(x))`` and the drop it makes is the
difference to ``sigmoid(m(x))``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost as xgb

SPEC = "uplift.json"
BASELINE = "baseline"


@dataclass
class UpliftModel:
    feature_names: list[str]
    baseline: xgb.Booster
    arms: dict[str, xgb.Booster]
    priors: dict[str, float]

    @property
    def interventions(self) -> list[str]:
        return list(self.arms)

    def start_margin(self, baseline_margin: np.ndarray, name: str) -> np.ndarray:
        """Where intervention ``name``'s booster starts: the baseline shifted by its prior."""
        return baseline_margin + np.log1p(-self.priors[name])

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(churn probability without contact, per customer; drop in it per intervention, customers x
        interventions in ``interventions`` order). A drop can be negative: a contact that harms."""
        margin = self.baseline.inplace_predict(X, predict_type="margin")
        p0 = _sigmoid(margin)
        drops = [p0 - _sigmoid(booster.inplace_predict(X, predict_type="margin",
                                                       base_margin=self.start_margin(margin, name)))
                 for name, booster in self.arms.items()]
        return p0, np.column_stack(drops) if drops else np.zeros((len(p0), 0))

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.baseline.save_model(str(folder / f"{BASELINE}.ubj"))
        for name, booster in self.arms.items():
            booster.save_model(str(folder / f"{name}.ubj"))
        (folder / SPEC).write_text(json.dumps({"feature_names": self.feature_names, "priors": self.priors,
                                               "interventions": self.interventions}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path) -> UpliftModel:
        spec = json.loads((folder / SPEC).read_text())
        return cls(spec["feature_names"], _booster(folder / f"{BASELINE}.ubj"),
                   {name: _booster(folder / f"{name}.ubj") for name in spec["interventions"]},
                   {k: float(v) for k, v in spec["priors"].items()})


def _booster(path: Path) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(str(path))
    return booster


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))
