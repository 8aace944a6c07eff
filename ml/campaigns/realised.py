"""What a campaign would really have achieved, on generated data whose truth is known.

The generator's truth table (``<out>/truth/customers.parquet``) says, per customer, the real churn
date and whether each intervention would have kept them (``saved_by_<intervention>``). A plan's
realised churn reduction is the share of the real churners within the outcome window that it
saves.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from ml.campaigns.optimiser import NO_CONTACT, Catalogue


@dataclass(frozen=True)
class Truth:
    churner: np.ndarray
    """bool per scored customer: churned within the outcome window."""
    saved: np.ndarray
    """bool (customers x catalogue interventions): the intervention would have kept a churner."""
    window: tuple[str, str]
    uplift: np.ndarray | None = None
    """(customers x catalogue interventions) each customer's true chance a contact keeps them, when
    the truth has it."""


def load_truth(uri: str, customer_ids: np.ndarray, catalogue: Catalogue, as_of: dt.date, days: int) -> Truth:
    """The truth of the scored customers, in their order (a customer absent from it never churns)."""
    fs, path = storage.resolve(uri)
    columns = ["customer_id", "churn_date", *[f"saved_by_{name}" for name in catalogue.names]]
    present = set(pq.read_schema(path, filesystem=fs).names)
    missing = set(columns) - present
    if missing:
        raise ValueError(f"truth table {uri} lacks {sorted(missing)}: is the catalogue the generator's?")
    uplift_columns = [f"uplift_{name}" for name in catalogue.names]
    has_uplift = set(uplift_columns) <= present
    table = pq.read_table(path, filesystem=fs, columns=columns + (uplift_columns if has_uplift else []))
    position = pc.index_in(customer_ids, value_set=table.column("customer_id")).to_numpy(zero_copy_only=False)
    found = ~np.isnan(position.astype(np.float64))
    rows = np.where(found, position, 0).astype(np.int64)
    end = as_of + dt.timedelta(days=days)
    churn = table.column("churn_date")
    in_window = pc.fill_null(pc.and_(pc.greater(churn, as_of), pc.less_equal(churn, end)), False).to_numpy()
    churner = found & in_window[rows]
    saved = np.column_stack([table.column(f"saved_by_{name}").to_numpy(zero_copy_only=False)[rows]
                             for name in catalogue.names]).astype(bool) & churner[:, None]
    uplift = (np.column_stack([np.nan_to_num(table.column(c).to_numpy(zero_copy_only=False)[rows]) * found
                               for c in uplift_columns]) if has_uplift else None)
    return Truth(churner, saved, (str(as_of + dt.timedelta(days=1)), str(end)), uplift)


def realised_outcome(choice: np.ndarray, truth: Truth, cost: np.ndarray) -> dict[str, Any]:
    chosen = np.flatnonzero(choice != NO_CONTACT)
    saved = int(truth.saved[chosen, choice[chosen]].sum())
    return _reduction(saved, truth, float(cost[choice[chosen]].sum()))


def realised_random(truth: Truth, contacted: int, intervention: int, eligible: np.ndarray | None,
                    cost: float) -> dict[str, Any]:
    """Expected realised outcome of contacting ``contacted`` random (eligible) customers with one
    intervention."""
    saved = truth.saved[:, intervention] if eligible is None else truth.saved[eligible, intervention]
    return _reduction(contacted * float(saved.mean()) if saved.size else 0.0, truth, contacted * cost)


def _reduction(saved: float, truth: Truth, cost: float) -> dict[str, Any]:
    churners = int(truth.churner.sum())
    return {"churners": churners, "churners_saved": saved, "cost": cost,
            "churn_reduction": saved / churners if churners else 0.0,
            "cost_per_churner_saved": cost / saved if saved else None}
