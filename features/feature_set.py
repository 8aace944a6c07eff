"""Feature schemas: the ordered list of features a snapshot holds and a model expects.

A ``FeatureSet`` travels with every snapshot (its manifest), every registered model and every
online-store version; its ``schema_hash`` is how they check they agree on the layout.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

FeatureDtype = Literal["float", "int", "bool", "category"]


class SchemaMismatch(ValueError):
    """Two parts disagree on the feature layout (a model and a snapshot, a model and the online
    features, or stored vectors and the version that should hold them)."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: FeatureDtype
    description: str
    source: str
    window_days: int | None = None
    default: float | None = None
    categories: tuple[str, ...] | None = None

    def encode_category(self, value: str | None) -> float:
        """Stable integer code of a category (its index in ``categories``); NaN when unknown."""
        if value is None or not self.categories or value not in self.categories:
            return math.nan
        return float(self.categories.index(value))


@dataclass(frozen=True)
class FeatureSet:
    features: tuple[FeatureSpec, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate feature names: {sorted(dupes)}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def schema_hash(self) -> str:
        """Hash of the layout (names, dtypes, category codes): what readers must agree on."""
        layout = [[f.name, f.dtype, list(f.categories or ())] for f in self.features]
        return hashlib.sha256(json.dumps(layout).encode()).hexdigest()[:16]

    def to_json(self) -> list[dict[str, Any]]:
        return [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(f).items()} for f in self.features]

    @classmethod
    def from_json(cls, items: list[dict[str, Any]]) -> FeatureSet:
        return cls(tuple(
            FeatureSpec(**{**i, "categories": tuple(i["categories"]) if i.get("categories") else None})
            for i in items
        ))

    def markdown_table(self) -> str:
        rows = ["| feature | type | window | source | default | description |", "|---|---|---|---|---|---|"]
        for f in self.features:
            window = f"{f.window_days} d" if f.window_days else ""
            default = "" if f.default is None else f"{f.default:g}"
            rows.append(f"| `{f.name}` | {f.dtype} | {window} | {f.source} | {default} | {f.description} |")
        return "\n".join(rows)


def feature_matrix(table: pa.Table, names: list[str]) -> np.ndarray:
    """Row-major float32 matrix of the named columns of an Arrow table (nulls become NaN,
    XGBoost's missing): the one copy of the features that training, scoring and loads use."""
    X = np.empty((table.num_rows, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        X[:, j] = table.column(name).cast(pa.float32()).to_numpy()
    return X
