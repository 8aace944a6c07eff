"""Files of one source from one shard, in the raw layout:

``raw/<source>/date=YYYY-MM-DD/part-<shard>.<ext>`` for event streams (one file per arrival
day), ``raw/<source>/part-<shard>.<ext>`` for dimension tables.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from features.sources import Source
from simulator.text import document, lines
from simulator.window import Window


def file_path(raw: str, source: Source, shard: int, partition: str | None = None) -> str:
    folder = f"{raw}/{source.name}" + (f"/{partition}" if partition else "")
    return f"{folder}/part-{shard:05d}.{source.format}"


def write_source(
    fs: pafs.FileSystem, raw: str, source: Source, shard: int, table: pa.Table, arrival: np.ndarray | None,
    window: Window,
) -> tuple[int, int]:
    """Write the rows (in order; ``arrival`` sorted) and return (bytes, files).

    ``table`` holds typed columns for parquet, rendered tokens (``text.tokens``) for csv/jsonl.
    """
    encoded = table if source.format == "parquet" else lines(table, source.format)
    if arrival is None:
        return _write(fs, file_path(raw, source, shard), source, table.column_names, encoded), 1
    bounds = np.searchsorted(arrival, np.arange(window.days + 1))
    written = files = 0
    for day in np.flatnonzero(np.diff(bounds)):
        part = encoded.slice(bounds[day], bounds[day + 1] - bounds[day])
        path = file_path(raw, source, shard, f"date={window.date(day).isoformat()}")
        written += _write(fs, path, source, table.column_names, part)
        files += 1
    return written, files


def _write(fs: pafs.FileSystem, path: str, source: Source, names: list[str], data: pa.Table | pa.Array) -> int:
    if source.format == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink)
        payload = sink.getvalue().to_pybytes()
    else:
        payload = document(names if source.format == "csv" else None, data)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(payload)
    return len(payload)
