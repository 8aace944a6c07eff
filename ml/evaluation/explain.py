"""Why a customer scores high: the features with the largest XGBoost contributions."""
from __future__ import annotations

import numpy as np
import xgboost as xgb


def contributions(booster: xgb.Booster, X: np.ndarray, feature_names: list[str]) -> np.ndarray:
    """Per-feature log-odds contributions (SHAP values from the trees), bias column dropped."""
    matrix = xgb.DMatrix(X, feature_names=feature_names)
    return booster.predict(matrix, pred_contribs=True)[:, :-1]


def top_raising(contribs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the ``k`` largest contributions, largest first: feature indices, values, and which
    of them raise the risk (> 0; a prefix of each row). Vectorised: no Python loop over rows."""
    k = min(k, contribs.shape[1])
    if k == 0:
        empty = np.empty((len(contribs), 0))
        return empty.astype(np.int64), empty, empty.astype(bool)
    top = np.argpartition(-contribs, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(contribs, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    top, values = np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)
    return top, values, values > 0


def top_reasons(contribs: np.ndarray, feature_names: list[str], k: int) -> list[list[dict[str, float]]]:
    """The up to ``k`` features pushing each customer's risk up the most, largest first."""
    top, values, raising = top_raising(contribs, k)
    return [[{"feature": feature_names[j], "contribution": float(v)} for j, v in zip(idx[up], val[up])]
            for idx, val, up in zip(top, values, raising)]
