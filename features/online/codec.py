"""Packed feature vectors: a 4-byte schema tag and the features as little-endian float32, in
FeatureSet order, and Redis MSET commands of them built without Python work per key."""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from features.feature_set import SchemaMismatch

TAG_BYTES = 4


def schema_tag(schema_hash: str) -> int:
    """The 32-bit tag written in front of every vector of a layout."""
    return int.from_bytes(bytes.fromhex(schema_hash[: 2 * TAG_BYTES]), "little")


def pack_vectors(tag: int, values: np.ndarray) -> np.ndarray:
    """Packed vectors of the rows of ``values``: one row of bytes each (tag + float32 values)."""
    n, width = values.shape
    block = np.empty((n, width + 1), dtype="<f4")
    block[:, 0] = np.array(tag, dtype="<u4").view("<f4")
    block[:, 1:] = values
    return block.view(np.uint8)


def encode_rows(tag: int, values: np.ndarray) -> list[bytes]:
    """Packed vectors as bytes objects, one per row."""
    return [row.tobytes() for row in pack_vectors(tag, values)]


def decode_rows(raw: Sequence[bytes | None], tag: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, found) from packed vectors, ``None`` for a missing key; raises SchemaMismatch
    when a vector is not of layout ``tag`` with ``width`` features."""
    if None not in raw:  # the serving case: every customer known, no per-row work in Python
        return _unpack(cast("Sequence[bytes]", raw), tag, width).copy(), np.ones(len(raw), dtype=bool)
    found = np.fromiter((v is not None for v in raw), dtype=bool, count=len(raw))
    values = np.full((len(raw), width), np.nan, dtype=np.float32)
    present = [v for v in raw if v is not None]
    if present:
        values[found] = _unpack(present, tag, width)
    return values, found


def _unpack(raw: Sequence[bytes], tag: int, width: int) -> np.ndarray:
    """The values of packed vectors (a read-only view), after checking their length and tag."""
    if set(map(len, raw)) != {(width + 1) * 4}:
        raise SchemaMismatch(f"stored vectors are not {width} float32 features long")
    block = np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), width + 1)
    if np.any(block[:, 0].view("<u4") != tag):
        raise SchemaMismatch("stored vectors carry another schema tag than the version's layout")
    return block[:, 1:]


def mset_commands(keys: Sequence[bytes], vectors: np.ndarray, rows_per_command: int) -> list[bytes]:
    """MSETs of ``keys`` -> rows of ``vectors`` (uint8, one packed vector per row) in Redis'
    protocol, built directly: for keys of one length (the usual case) as one numpy array, with no
    Python work per key; otherwise key by key."""
    starts = range(0, len(keys), rows_per_command)
    if len(set(map(len, keys))) == 1:
        rows = _bulk_pairs(np.array(keys), vectors)
        bodies = [rows[i:i + rows_per_command].tobytes() for i in starts]
    else:
        pairs = [b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, v.size, v.tobytes()) for k, v in zip(keys, vectors)]
        bodies = [b"".join(pairs[i:i + rows_per_command]) for i in starts]
    counts = [min(rows_per_command, len(keys) - i) for i in starts]
    return [b"*%d\r\n$4\r\nMSET\r\n" % (2 * n + 1) + body for n, body in zip(counts, bodies)]


def _bulk_pairs(keys: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Rows of ``$<klen>\\r\\n<key>\\r\\n$<vlen>\\r\\n<vector>\\r\\n`` as a uint8 array (keys of one length)."""
    n, key_len, vec_len = len(keys), keys.dtype.itemsize, vectors.shape[1]
    pieces: list[bytes | np.ndarray] = [b"$%d\r\n" % key_len, keys.view(np.uint8).reshape(n, key_len),
                                        b"\r\n$%d\r\n" % vec_len, vectors, b"\r\n"]
    widths = [p.shape[1] if isinstance(p, np.ndarray) else len(p) for p in pieces]
    out = np.empty((n, sum(widths)), dtype=np.uint8)
    at = 0
    for piece, width in zip(pieces, widths):
        out[:, at:at + width] = piece if isinstance(piece, np.ndarray) else np.frombuffer(piece, np.uint8)
        at += width
    return out
