"""The offline feature store: immutable, versioned feature snapshots addressed by id.

Layout under ``<data>/snapshots/``::

    <id>/data/*.parquet        one row per customer: customer_id, features, [label], as_of
    <id>/quarantine/           rows that broke a contract, with the rule (raw snapshots)
    <id>/retention_contacts/   the valid retention contacts made up to the as-of date (raw snapshots)
    <id>/manifest.json         feature schema + hash, row counts, quarantine by reason, window...
    <id>/_SUCCESS              written last, before the folder is renamed into place
    LATEST                     pointer to the newest id, updated after the snapshot is complete
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core import outputs, storage
from core.settings import Settings
from features.feature_set import FeatureSet

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame
    from ray.data import Dataset

LATEST, SUCCESS = outputs.LATEST, outputs.SUCCESS
MANIFEST = "manifest.json"
CONTACTS = "retention_contacts"
PART_ROWS = 250_000


class SnapshotNotFound(LookupError):
    pass


def snapshots_root(settings: Settings) -> str:
    return storage.join(settings.data_uri, "snapshots")


def laid_out(features: DataFrame, rows: int) -> DataFrame:
    """The snapshot's rows in parts of about ``PART_ROWS`` (partitions merged, not shuffled): the
    Parquet files written and the blocks handed to Ray Data. Few parts matter for the hand-off:
    each is one Ray task, and on a small node each may wait for a worker process to start."""
    return features.coalesce(max(1, rows // PART_ROWS))


@dataclass(frozen=True)
class Snapshot:
    id: str
    uri: str

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return storage.read_json(storage.join(self.uri, MANIFEST))

    @property
    def data_uri(self) -> str:
        return storage.join(self.uri, "data")

    @property
    def feature_set(self) -> FeatureSet:
        return FeatureSet.from_json(self.manifest["features"])

    @property
    def has_label(self) -> bool:
        return bool(self.manifest.get("label"))

    @property
    def contacts_uri(self) -> str | None:
        """The retention contacts known at the as-of date; None for a snapshot of a flat table."""
        return storage.join(self.uri, CONTACTS) if "contacts" in self.manifest else None

    def read(self, **kwargs: Any) -> Dataset:
        """The snapshot as a Ray Dataset, through Ray Data's first Parquet reader: the default
        (v2) first lists and samples the files through read tasks of its own, slow to start on a
        busy small node, and a full scan of a snapshot needs none of its pushdowns."""
        import ray.data

        context = ray.data.DataContext.get_current()
        before, context.use_datasource_v2 = context.use_datasource_v2, False
        try:
            return ray.data.read_parquet(self.data_uri, **kwargs)
        finally:
            context.use_datasource_v2 = before

    def to_pandas(self) -> pd.DataFrame:
        import pyarrow.parquet as pq

        fs, path = storage.resolve(self.data_uri)
        return pq.read_table(path, filesystem=fs).to_pandas()


def open_snapshot(settings: Settings, ref: str = "latest") -> Snapshot:
    """A complete snapshot by id, by ``latest``, or by full URI."""
    try:
        found = outputs.resolve(snapshots_root(settings), ref, "snapshot", hint=": run `churn etl` first")
    except outputs.OutputNotFound as exc:
        raise SnapshotNotFound(str(exc)) from None
    return Snapshot(found.id, found.uri)


def publish(settings: Settings, snapshot_id: str, write: Callable[[str], dict[str, Any]],
            latest: bool = True) -> tuple[Snapshot, bool]:
    """Build a snapshot with ``write(tmp_uri) -> manifest`` and move it into place atomically,
    then point LATEST at it (unless ``latest`` is False). An existing complete snapshot with this
    id is reused (ids are content fingerprints). Returns the snapshot and whether it was built now."""
    published, _ = outputs.publish_summarised(snapshots_root(settings), snapshot_id,
                                              lambda tmp: {"id": snapshot_id, **write(tmp)}, MANIFEST,
                                              latest=latest)
    return Snapshot(snapshot_id, published.uri), published.built
