"""Seeded random generators, one per (seed, purpose, shard).

Each stream draws from its own generator keyed by name, so adding or reordering streams never
changes the rows of the others, and a shard's output depends only on (seed, shard).
"""
from __future__ import annotations

import zlib

import numpy as np


def rng(seed: int, purpose: str, shard: int = 0) -> np.random.Generator:
    key = (zlib.crc32(purpose.encode()), shard)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
