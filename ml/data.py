"""Training data from a snapshot: features matrix, label, and stable splits.

Splits are by a hash of the customer id, so a customer lands in the same split in every run
and every snapshot: the holdout stays unseen across retraining and model comparisons.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.schema import CUSTOMER_ID, LABEL
from features.feature_set import FeatureSet

if TYPE_CHECKING:
    from ray.data import Dataset

    from core.settings import TrainSettings

TRAIN, VALIDATION, HOLDOUT = "train", "validation", "holdout"
SPLIT = "_split"


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
    def from_frame(cls, df: pd.DataFrame, features: FeatureSet) -> Labelled:
        if LABEL not in df:
            raise ValueError("this snapshot has no label (a scoring snapshot): train on a training snapshot")
        return cls(df[features.names].to_numpy(dtype="float32"), df[LABEL].to_numpy(dtype="int8"),
                   df[CUSTOMER_ID].to_numpy(), df)


def split_for(customer_ids: np.ndarray | pd.Series, train: TrainSettings) -> np.ndarray:
    """The split of each customer under the training settings (what training and promotion share)."""
    return split_of(customer_ids, train.validation_fraction, train.holdout_fraction, train.seed)


def with_split(block: pa.Table, train: TrainSettings) -> pa.Table:
    """Ray Data UDF: the block with a ``SPLIT`` column. It lives here, in a module of light
    imports, because a cold Ray worker imports the UDF's module, and the training pipeline's
    imports MLflow, slow to import."""
    ids = block.column(CUSTOMER_ID).to_numpy(zero_copy_only=False)
    return block.append_column(SPLIT, pa.array(split_for(ids, train)))


def _split_counts(block: pa.Table) -> dict[str, tuple[int, int]]:
    """(rows, positives) of each split in a block."""
    counts = {}
    for part in pc.unique(block.column(SPLIT)).to_pylist():
        labels = block.column(LABEL).filter(pc.equal(block.column(SPLIT), part))
        counts[part] = (len(labels), int(pc.sum(labels).as_py() or 0))
    return counts


def split_counts(ds: Dataset) -> dict[str, tuple[int, int]]:
    """(rows, positives) per split of a materialised dataset with a ``SPLIT`` column, counted by
    one task per block where the block is (``Dataset.sum`` is an all-to-all aggregation, far
    slower for a count)."""
    import ray

    count = ray.remote(_split_counts)
    totals: dict[str, tuple[int, int]] = {}
    for counts in ray.get([count.remote(block) for block in ds.to_arrow_refs()]):
        for part, (rows, positives) in counts.items():
            before = totals.get(part, (0, 0))
            totals[part] = (before[0] + rows, before[1] + positives)
    return totals


def dataset_pos_weight(ds: Dataset) -> float:
    """negatives / positives of the training rows of a dataset with a ``SPLIT`` column."""
    rows, positives = split_counts(ds).get(TRAIN, (0, 0))
    return float((rows - positives) / positives) if positives else 1.0


def frame_splits(frame: pd.DataFrame, features: FeatureSet) -> list[tuple[np.ndarray, np.ndarray]]:
    """(float32 features, labels) of the train and of the validation rows of a frame with a
    ``SPLIT`` column."""
    parts = (frame[frame[SPLIT] == part] for part in (TRAIN, VALIDATION))
    return [(rows[features.names].to_numpy(dtype="float32"), rows[LABEL].to_numpy(dtype="int8")) for rows in parts]


def scale_pos_weight(y: np.ndarray) -> float:
    """negatives / positives: XGBoost's weight for the rare churn class."""
    positives = int(y.sum())
    return float((len(y) - positives) / positives) if positives else 1.0
