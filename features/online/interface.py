"""What the platform asks of an online store, whatever holds it (Redis today): versions that a
batch load fills and publishes in one step, and async readers of the live version."""
from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.feature_set import FeatureSet
from features.online.codec import schema_tag

LIVE, PREVIOUS = "live", "previous"
LOADING, FAILED, RETIRED = "loading", "failed", "retired"


class OnlineStoreError(RuntimeError):
    """Base of the online store's errors."""


class StoreUnavailable(OnlineStoreError):
    """The store cannot be reached (Redis down, timeout, auth)."""


class NoLiveVersion(OnlineStoreError):
    """Nothing was materialised yet (or the pointer names a version that is gone)."""


class LoadIncomplete(OnlineStoreError):
    """A version holds fewer (or other) rows than the load wrote: it is not published."""


@dataclass(frozen=True)
class OnlineVersion:
    """One materialised version: its id, layout and where it came from."""

    id: str
    features: FeatureSet
    schema_hash: str
    rows: int
    source: str
    state: str
    created_at: float

    @property
    def tag(self) -> int:
        return schema_tag(self.schema_hash)

    def summary(self) -> dict:
        return {"version": self.id, "schema_hash": self.schema_hash, "rows": self.rows, "source": self.source,
                "state": self.state, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at))}


@dataclass(frozen=True)
class FeatureRows:
    """Vectors of the ids asked for, in order: ``found[i]`` is False for an unknown customer
    (its row is all NaN)."""

    version: OnlineVersion
    values: np.ndarray  # (n, features) float32
    found: np.ndarray  # (n,) bool


class OnlineStore(abc.ABC):
    """Load, publish and roll back versions (the batch side)."""

    @abc.abstractmethod
    def begin(self, features: FeatureSet, source: str) -> OnlineVersion:
        """Register a new version in state ``loading``; readers do not see it yet."""

    @abc.abstractmethod
    def put_many(self, version: str, ids: Sequence[str], values: np.ndarray) -> int:
        """Write the vectors of ``ids`` (rows of ``values``) into ``version``; returns rows written."""

    @abc.abstractmethod
    def flip(self, version: str, expected_rows: int, sample_ids: Sequence[str] = ()) -> OnlineVersion:
        """Check ``version`` is complete, make it live in one step and keep the old one as previous."""

    @abc.abstractmethod
    def prune_old_versions(self) -> list[str]:
        """Remove the versions that are neither live nor previous (nor a load still running);
        returns their ids. Separate from ``flip``: removing a million keys gently takes seconds,
        and the new version is live meanwhile."""

    @abc.abstractmethod
    def abort(self, version: str) -> None:
        """Drop a version that will not be published."""

    @abc.abstractmethod
    def rollback(self) -> OnlineVersion:
        """Make the previous version live again (the current one becomes previous)."""

    @abc.abstractmethod
    def live(self) -> OnlineVersion | None:
        """The live version, or None before the first load."""

    @abc.abstractmethod
    def versions(self) -> list[OnlineVersion]:
        """Every version the store holds, oldest first."""


class OnlineReader(abc.ABC):
    """Serving side: async reads of the live version."""

    @abc.abstractmethod
    async def live(self, refresh: bool = False) -> OnlineVersion:
        """The live version (cached briefly); raises NoLiveVersion or StoreUnavailable."""

    @abc.abstractmethod
    async def get_many(self, ids: Sequence[str]) -> FeatureRows:
        """The vectors of ``ids`` from one version, in one round trip."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""
