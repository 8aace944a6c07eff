"""Arrow schemas and tables derived from the source catalogue (``features.sources``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.sources import SOURCES_BY_NAME, Column, Source

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}

ArrayLike: TypeAlias = pa.Array | np.ndarray


def arrow_schema(source: Source) -> pa.Schema:
    """Every field is nullable in the files: raw data breaks contracts (see ``defects``)."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.dtype]) for c in source.columns])


def to_table(source: Source, columns: Mapping[str, ArrayLike]) -> pa.Table:
    """A table with exactly the catalogue's columns and types; numbers clipped to their contract.

    Clipping keeps every generated (clean) value valid, so the only contract breaks in the
    output are the counted, injected defects.
    """
    names = [c.name for c in source.columns]
    if list(columns) != names:
        raise ValueError(f"{source.name}: built columns {list(columns)} != catalogue {names}")
    return pa.Table.from_arrays([_array(c, columns[c.name]) for c in source.columns], schema=arrow_schema(source))


def _array(column: Column, values: ArrayLike) -> pa.Array:
    if column.numeric and isinstance(values, np.ndarray) and (column.min is not None or column.max is not None):
        values = np.clip(values, column.min, column.max)
        if column.dtype == "int64":
            values = np.rint(values)
    if isinstance(values, pa.Array):
        return values.cast(ARROW_TYPES[column.dtype])
    if column.dtype == "int64":
        values = values.astype(np.int64)
    return pa.array(values, type=ARROW_TYPES[column.dtype])


def categories(source: str, column: str, weights: Mapping[str, float]) -> tuple[tuple[str, ...], np.ndarray]:
    """A column's allowed values in catalogue order with their (normalised) sampling weights.

    ``weights`` must name exactly the allowed values, so a catalogue change fails loudly here.
    """
    values = allowed(source, column)
    if set(weights) != set(values):
        raise ValueError(f"{source}.{column}: weights {sorted(weights)} != allowed {values}")
    p = np.array([weights[v] for v in values], dtype=float)
    return values, p / p.sum()


def allowed(source: str, column: str) -> tuple[str, ...]:
    values = SOURCES_BY_NAME[source].column(column).allowed
    if values is None:
        raise ValueError(f"{source}.{column} has no allowed values")
    return values


def labels(values: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Category codes (indices into ``values``) as a string array."""
    return pa.array(values, pa.string()).take(pa.array(codes, pa.int64()))


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers such as ``C00000042``: a prefix and a zero-padded number."""
    digits = pc.utf8_lpad(pa.array(numbers, pa.int64()).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


class Rows:
    """One source's generated (clean) rows, with the window day of each event for event streams."""

    def __init__(self, source: str, columns: Mapping[str, ArrayLike], event_day: np.ndarray | None = None):
        self.source = SOURCES_BY_NAME[source]
        self.table = to_table(self.source, columns)
        if self.source.is_event_stream and event_day is None:
            raise ValueError(f"{source} is an event stream: its rows need their event day")
        self.event_day = None if event_day is None else np.asarray(event_day, dtype=np.int64)
