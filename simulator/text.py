"""CSV and JSON-lines rendering, vectorised with Arrow compute.

Conventions shared by both: booleans ``true``/``false``, dates ``YYYY-MM-DD``, timestamps
``YYYY-MM-DDTHH:MM:SS``. CSV has a header and writes nulls as empty fields; JSONL writes one
object per line with the catalogue's column order and JSON ``null``. Values are first rendered
to per-column *tokens* (a CSV field, or a JSON literal), so defects can replace a token with an
unparsable string before the lines are assembled.
"""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from features.sources import Source

_QUOTED_IN_JSON = ("string", "date", "timestamp")


def tokens(table: pa.Table, source: Source, fmt: str) -> pa.Table:
    """Every column rendered as a null-free string column of CSV fields or JSON literals."""
    rendered = [_token(table.column(c.name).combine_chunks(), c.dtype, fmt) for c in source.columns]
    return pa.Table.from_arrays(rendered, names=[c.name for c in source.columns])


def lines(tokens: pa.Table, fmt: str) -> pa.Array:
    """One CSV record or JSON object per row (without the newline)."""
    columns = [tokens.column(i).combine_chunks() for i in range(tokens.num_columns)]
    if fmt == "csv":
        return pc.binary_join_element_wise(*columns, ",")
    parts: list = []
    for i, (name, column) in enumerate(zip(tokens.column_names, columns)):
        parts += [("{" if i == 0 else ", ") + json.dumps(name) + ": ", column]
    return pc.binary_join_element_wise(*parts, "}", "")


def document(header: list[str] | None, lines: pa.Array) -> bytes:
    """A file's bytes: an optional CSV header, then the lines, each ending with a newline."""
    body = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines), "\n")
    head = ",".join(header) + "\n" if header is not None else ""
    return head.encode() + body[0].as_buffer().to_pybytes() + (b"\n" if len(lines) else b"")


def _token(array: pa.Array, dtype: str, fmt: str) -> pa.Array:
    text = _plain(array, dtype)
    if fmt == "csv":
        return (_csv_quoted(text) if dtype == "string" else text).fill_null("")
    if dtype in _QUOTED_IN_JSON:
        text = _json_quoted(text)
    return text.fill_null("null")


def _plain(array: pa.Array, dtype: str) -> pa.Array:
    if dtype == "timestamp":
        return pc.strftime(array.cast(pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S")
    return array.cast(pa.string())


def _csv_quoted(text: pa.Array) -> pa.Array:
    needs = pc.match_substring_regex(text, '[",\\r\\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)


def _json_quoted(text: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")
