"""K-fold cross-validated ROC-AUC, one Ray task per fold (the stable estimate a single
holdout split cannot give on small data)."""
from __future__ import annotations

from typing import Any

import numpy as np
import ray
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from ml.data import fold_of, scale_pos_weight
from ml.training.ray_train import booster_params


@ray.remote(num_cpus=1)
def _fold_auc(X: np.ndarray, y: np.ndarray, folds: np.ndarray, k: int, params: dict[str, Any],
              rounds: int, seed: int) -> float:
    train, test = folds != k, folds == k
    p = booster_params(params, 1, scale_pos_weight(y[train]), seed)
    booster = xgb.train(p, xgb.DMatrix(X[train], label=y[train]), num_boost_round=rounds)
    return float(roc_auc_score(y[test], booster.inplace_predict(X[test])))


def cross_validated_auc(X: np.ndarray, y: np.ndarray, customer_ids: np.ndarray, params: dict[str, Any],
                        rounds: int, folds: int, seed: int) -> list[float]:
    """ROC-AUC of each fold, training ``rounds`` trees on the other folds."""
    fold = fold_of(customer_ids, folds, seed)
    X_ref, y_ref, fold_ref = ray.put(X), ray.put(y), ray.put(fold)
    return ray.get([_fold_auc.remote(X_ref, y_ref, fold_ref, k, params, rounds, seed) for k in range(folds)])
