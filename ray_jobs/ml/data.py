"""Training data from a snapshot: features matrix, label, and stable splits.

Splits are by a hash of the customer id, so a customer lands in the same split in every run
and every snapshot: the holdout stays unseen across retraining and model comparisons.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.feature_set import FeatureSet
from features.spark_features import CUSTOMER_ID, LABEL

TRAIN, VALIDATION, HOLDOUT = "train", "validation", "holdout"


def split_of(customer_ids: np.ndarray | pd.Series, validation: float, holdout: float, seed: int) -> np.ndarray:
    """``train`` / ``validation`` / ``holdout`` per customer, from a seeded hash of the id."""
    ids = pd.Series(np.asarray(customer_ids, dtype=object))
    u = (pd.util.hash_pandas_object(ids, index=False, hash_key=f"churn{seed:012d}"[:16]).to_numpy()
         % 1_000_000) / 1_000_000
    return np.where(u < holdout, HOLDOUT, np.where(u < holdout + validation, VALIDATION, TRAIN))


def fold_of(customer_ids: np.ndarray | pd.Series, folds: int, seed: int) -> np.ndarray:
    """Cross-validation fold (0..folds-1) per customer, from the same kind of stable hash."""
    ids = pd.Series(np.asarray(customer_ids, dtype=object))
    return (pd.util.hash_pandas_object(ids, index=False, hash_key=f"fold{seed:012d}"[:16]).to_numpy()
            % folds).astype(int)


@dataclass(frozen=True)
class Labelled:
    """Feature matrix (float32, snapshot column order) and labels of one split."""

    X: np.ndarray
    y: np.ndarray
    customer_ids: np.ndarray
    frame: pd.DataFrame

    @classmethod
    def from_frame(cls, df: pd.DataFrame, features: FeatureSet) -> "Labelled":
        if LABEL not in df:
            raise ValueError("this snapshot has no label (a scoring snapshot): train on a training snapshot")
        return cls(df[features.names].to_numpy(dtype="float32"), df[LABEL].to_numpy(dtype="int8"),
                   df[CUSTOMER_ID].to_numpy(), df)


def split_for(customer_ids: np.ndarray | pd.Series, train: "TrainSettings") -> np.ndarray:  # noqa: F821
    """The split of each customer under the training settings (what training and promotion share)."""
    return split_of(customer_ids, train.validation_fraction, train.holdout_fraction, train.seed)


def dataset_pos_weight(ds: "ray.data.Dataset") -> float:  # noqa: F821
    """negatives / positives of a labelled Ray Dataset, computed without collecting it."""
    positives = ds.sum(LABEL)
    return float((ds.count() - positives) / positives) if positives else 1.0


def scale_pos_weight(y: np.ndarray) -> float:
    """negatives / positives: XGBoost's weight for the rare churn class."""
    positives = int(y.sum())
    return float((len(y) - positives) / positives) if positives else 1.0
