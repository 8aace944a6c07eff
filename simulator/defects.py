"""Contract breaks injected into the clean rows, counted exactly so the ETL can reconcile.

Per source and shard, exactly ``round(clean_rows * rate)`` distinct rows become defective, each
with one kind among those applicable to the source and row (see ``KINDS``). A kind never
doubles as another: nulls only hit non-nullable columns, out-of-range values are only put in
bounded numeric columns, duplicates copy rows that are otherwise untouched, late arrivals keep
valid values. ``plans_catalogue`` is reference data and stays clean: a rejected plan row would
orphan every subscription on that plan, which no row-level count could reconcile.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.sources import Column, Source
from simulator.schema import ARROW_TYPES

KINDS = ("null", "duplicate", "malformed", "out_of_range", "unknown_category", "late_arrival")
TEXT_FORMATS = ("csv", "jsonl")
REFERENCE_DATA = ("plans_catalogue",)
MAX_DAYS_LATE = 5
MALFORMED_VALUES = ("#VALUE!", "2026-13-45", "1.2.3", "--", "twelve")
"""Unparsable as a number, date or timestamp; none is a common null marker such as 'n/a'."""
UNKNOWN_VALUES = ("UNKNOWN", "unknown", "n0rth", "legacy")
NO_COLUMN = ""


@dataclass(frozen=True)
class DefectPlan:
    row: np.ndarray
    """Sorted indices of the defective clean rows."""
    kind: np.ndarray
    """Index into KINDS per defective row."""
    column: np.ndarray
    """Column hit per defective row (NO_COLUMN for duplicates and late arrivals)."""
    delay: np.ndarray
    """Days late per defective row (0 unless a late arrival)."""

    def counts(self) -> dict[str, int]:
        return {k: int((self.kind == i).sum()) for i, k in enumerate(KINDS)}

    def rows_of(self, kind: str, column: str = NO_COLUMN) -> np.ndarray:
        return self.row[(self.kind == KINDS.index(kind)) & (self.column == column)]


def targets(source: Source, kind: str) -> list[str]:
    """The columns a kind can hit in this source ([NO_COLUMN] for row-level kinds; [] if none)."""
    cols = source.columns
    if kind == "null":
        return [c.name for c in cols if not c.nullable]
    if kind == "malformed":
        text = source.format in TEXT_FORMATS
        return [c.name for c in cols if text and (c.numeric or c.dtype in ("date", "timestamp"))]
    if kind == "out_of_range":
        return [c.name for c in cols if c.numeric and (c.min is not None or c.max is not None)]
    if kind == "unknown_category":
        return [c.name for c in cols if c.allowed]
    if kind == "late_arrival":
        return [NO_COLUMN] if source.is_event_stream else []
    return [NO_COLUMN]


def plan_defects(
    source: Source, n: int, event_day: np.ndarray | None, days: int, rate: float, gen: np.random.Generator
) -> DefectPlan:
    count = 0 if source.name in REFERENCE_DATA else round(n * rate)
    row = np.sort(gen.choice(n, count, replace=False))
    options = [targets(source, k) for k in KINDS]
    eligible = np.tile([bool(o) for o in options], (count, 1))
    late = KINDS.index("late_arrival")
    days_left = np.zeros(count, np.int64) if event_day is None else days - 1 - event_day[row]
    eligible[:, late] &= days_left > 0
    kind = np.argmax(np.where(eligible, gen.random(eligible.shape), -1.0), axis=1)
    column = np.full(count, NO_COLUMN, dtype=object)
    for k, names in enumerate(options):
        hit = kind == k
        if names and hit.any():
            column[hit] = np.array(names, dtype=object)[gen.integers(0, len(names), hit.sum())]
    span = np.minimum(days_left, MAX_DAYS_LATE)
    delay = np.where(kind == late, 1 + (gen.random(count) * span).astype(np.int64), 0)
    return DefectPlan(row, kind, column, delay)


def break_values(table: pa.Table, source: Source, plan: DefectPlan, gen: np.random.Generator) -> pa.Table:
    """Apply the value-level kinds (null, out_of_range, unknown_category) to the typed table."""
    for i, col in enumerate(source.columns):
        array = table.column(i).combine_chunks()
        for kind in ("null", "out_of_range", "unknown_category"):
            rows = plan.rows_of(kind, col.name)
            if len(rows):
                array = _replace(array, rows, _bad_values(kind, col, array.take(pa.array(rows)), gen))
        table = table.set_column(i, col.name, array)
    return table


def break_text(tokens: pa.Table, fmt: str, plan: DefectPlan, gen: np.random.Generator) -> pa.Table:
    """Apply ``malformed``: replace rendered values (csv text, JSON literals) by unparsable strings."""
    for i, name in enumerate(tokens.column_names):
        rows = plan.rows_of("malformed", name)
        if len(rows):
            values = gen.choice(MALFORMED_VALUES, len(rows))
            literals = [json.dumps(str(v)) if fmt == "jsonl" else str(v) for v in values]
            tokens = tokens.set_column(i, name, _replace(tokens.column(i).combine_chunks(), rows, pa.array(literals)))
    return tokens


def with_duplicates(arrival: np.ndarray, plan: DefectPlan) -> tuple[np.ndarray, np.ndarray]:
    """Row order of the written rows (duplicate copies last in their file) and each one's
    arrival day (late arrivals shifted)."""
    n = len(arrival)
    arrival = arrival.copy()
    late = plan.kind == KINDS.index("late_arrival")
    arrival[plan.row[late]] += plan.delay[late]
    copies = plan.rows_of("duplicate")
    rows = np.concatenate([np.arange(n), copies])
    arrivals = np.concatenate([arrival, arrival[copies]])
    order = np.lexsort((np.arange(len(rows)) >= n, arrivals))
    return rows[order], arrivals[order]


def _replace(array: pa.Array, rows: np.ndarray, values: pa.Array) -> pa.Array:
    mask = np.zeros(len(array), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(array, pa.array(mask), values.cast(array.type))


def _bad_values(kind: str, column: Column, current: pa.Array, gen: np.random.Generator) -> pa.Array:
    n = len(current)
    if kind == "null":
        return pa.nulls(n, ARROW_TYPES[column.dtype])
    if kind == "unknown_category":
        assert column.allowed is not None
        pool = [v for v in UNKNOWN_VALUES if v not in column.allowed]
        return pa.array(gen.choice(pool, n).astype(object), pa.string())
    values = current.to_numpy(zero_copy_only=False).astype(float)
    above = column.max is not None and (column.min is None or gen.random(n) < 0.5)
    high = np.full(n, column.max * 10 if column.max is not None else np.nan)
    low = np.minimum(column.min - 1, -(np.abs(values) + 1)) if column.min is not None else high
    bad = np.where(above, high, low)
    return pa.array(np.rint(bad).astype(np.int64) if column.dtype == "int64" else np.round(bad, 2))
