"""Why a customer scores high: the features with the largest XGBoost contributions."""
from __future__ import annotations

import numpy as np
import xgboost as xgb


def contributions(booster: xgb.Booster, X: np.ndarray, feature_names: list[str]) -> np.ndarray:
    """Per-feature log-odds contributions (SHAP values from the trees), bias column dropped."""
    matrix = xgb.DMatrix(X, feature_names=feature_names)
    return booster.predict(matrix, pred_contribs=True)[:, :-1]


def top_reasons(contribs: np.ndarray, feature_names: list[str], k: int) -> list[list[dict[str, float]]]:
    """The ``k`` features pushing each customer's risk up the most."""
    order = np.argsort(-contribs, axis=1)[:, :k]
    return [[{"feature": feature_names[j], "contribution": float(row[j])} for j in idx if row[j] > 0]
            for row, idx in zip(contribs, order)]
