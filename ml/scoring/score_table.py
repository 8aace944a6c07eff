"""The scores table: its columns, the risk segment and run constants added to a scored batch, and
the per-tier summary.

Free of heavy imports (MLflow, XGBoost): ``label_batch`` and ``PartNames`` run in Ray Data write
tasks, and a cold worker imports only what the function's module needs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from ray.data.datasource import FilenameProvider

from core.schema import CUSTOMER_ID
from ml.scoring import segments

PROBABILITY, SEGMENT, REASONS = "probability", "risk_segment", "top_reasons"
MODEL_VERSION, SNAPSHOT_ID, SCORED_AT = "model_version", "snapshot_id", "scored_at"


def label_batch(batch: pa.Table, bounds: list[tuple[str, float]], constants: dict[str, Any]) -> pa.Table:
    """Add the risk segment and the run's constant columns to a scored batch."""
    proba = batch.column(PROBABILITY).to_numpy()
    columns = {CUSTOMER_ID: batch.column(CUSTOMER_ID), PROBABILITY: batch.column(PROBABILITY),
               SEGMENT: pa.array(segments.assign(proba, bounds), pa.string()), REASONS: batch.column(REASONS)}
    columns.update({name: pa.repeat(pa.scalar(value), batch.num_rows) for name, value in constants.items()})
    return pa.table(columns)


def tier_summary(proba: np.ndarray, bounds: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Customers, share, expected churners and mean probability per tier, highest tier first."""
    tier = segments.assign(proba, bounds)
    rows = []
    for name, low in bounds:
        p = proba[tier == name]
        rows.append({"tier": name, "lower_bound": low, "customers": int(p.size),
                     "share": p.size / proba.size if proba.size else 0.0,
                     "expected_churners": float(p.sum(dtype=np.float64)),
                     "mean_probability": float(p.mean()) if p.size else None})
    return rows


class PartNames(FilenameProvider):
    """``part-<task>.parquet`` (the folder is the run's fresh temporary one, so overwriting is safe)."""

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:05d}.parquet"
