"""Raw sources -> one point-in-time feature snapshot (Spark on Ray, then Ray Data)."""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from core import storage
from core.provenance import code_version, fingerprint
from core.settings import Settings
from features import validation
from features.definitions import FEATURES
from features.profile import profile
from features.snapshot import CONTACTS, Snapshot, laid_out, publish
from features.sources import SOURCES, Source
from features.spark_features import build_features
from features.spark_session import spark_readable, spark_writable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


Validated = tuple[dict[str, "DataFrame"], list[validation.SourceReport], "DataFrame"]
"""The valid rows of every source, their reports, and the quarantined rows."""


class EtlError(ValueError):
    pass


@dataclass
class EtlResult:
    snapshot: Snapshot
    built: bool
    seconds: float


def data_window(raw_uri: str) -> tuple[dt.date, dt.date]:
    """First and last arrival dates present in the raw event streams (from partition names)."""
    dates = []
    for s in SOURCES:
        if s.is_event_stream:
            fs, path = storage.resolve(storage.join(raw_uri, s.name))
            infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            dates += [dt.date.fromisoformat(i.base_name[5:]) for i in infos if i.base_name.startswith("date=")]
    if not dates:
        raise EtlError(f"no date partitions found under {raw_uri}: is this a raw data folder?")
    return min(dates), max(dates)


def _raw_fingerprint(raw_uri: str) -> str:
    """Fingerprint of the raw inputs: every file's path and size."""
    fs, path = storage.resolve(raw_uri)
    files = sorted((i.path[len(path):], i.size) for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                   if i.type == pafs.FileType.File)
    return fingerprint(files)


def _validate_sources(spark: SparkSession, raw_root: str, sources: tuple[Source, ...]):
    """Validated tables, their reports, and the union of quarantined rows (``raw_root``: where Spark reads)."""
    tables, reports, quarantine = {}, [], None
    for source in sources:
        started = time.perf_counter()
        raw = validation.read_raw(spark, raw_root, source)
        checked = validation.validate(raw, source).persist()
        rep = validation.report(checked, source)
        if rep.rows_in == 0 and not source.may_be_empty:
            raise validation.SourceError(f"raw source '{source.name}' is empty (0 rows)")
        reports.append(rep)
        tables[source.name] = validation.valid_rows(checked, source)
        bad = validation.quarantined_rows(checked, source)
        quarantine = bad if quarantine is None else quarantine.unionByName(bad)
        log.info("source validated", extra={**asdict(rep), "seconds": round(time.perf_counter() - started, 1)})
    return tables, reports, quarantine


def run(spark: SparkSession, settings: Settings, raw_uri: str, as_of: dt.date,
        horizon_days: int = 30, scoring: bool = False) -> EtlResult:
    """Validate every raw source, build features at ``as_of`` and publish the snapshot.

    A training snapshot (the default) carries the label "churned within ``horizon_days`` after
    ``as_of``" and needs data up to that date; a scoring snapshot has no label.
    """
    return run_many(spark, settings, raw_uri, [as_of], horizon_days, scoring)[0]


def run_many(spark: SparkSession, settings: Settings, raw_uri: str, dates: list[dt.date],
             horizon_days: int = 30, scoring: bool = False, latest: bool = True) -> list[EtlResult]:
    """``run`` at several as-of dates (the features at each past campaign's contact date): the
    sources are validated once, and only if a snapshot is not built yet. ``latest=False`` leaves
    the LATEST pointer alone (auxiliary snapshots)."""
    for source in SOURCES:
        validation.check_present(raw_uri, source)
    window = data_window(raw_uri)
    horizon: int | None = None if scoring else horizon_days
    for as_of in dates:
        _check_date(as_of, window, horizon)
    raw_print = _raw_fingerprint(raw_uri)
    validated: list[Validated] = []
    with contextlib.ExitStack() as staged:

        def sources() -> Validated:
            """Validated on the first snapshot not built yet, read from where Spark reaches the raw data."""
            if not validated:
                raw_root = staged.enter_context(spark_readable(raw_uri, settings))
                tables, reports, quarantine = _validate_sources(spark, raw_root, SOURCES)
                limit = settings.etl.max_defect_rate
                validation.enforce_thresholds(reports, {s.name: s.max_defect_rate if limit is None else limit
                                                        for s in SOURCES})
                validated.append((tables, reports, quarantine))
            return validated[0]

        results = []
        for as_of in dates:
            started = time.perf_counter()
            snapshot_id = f"{as_of:%Y%m%d}-" + fingerprint(raw_print, str(as_of), horizon, FEATURES.schema_hash,
                                                            code_version())
            snapshot, built = publish(settings, snapshot_id,
                                      partial(_write, settings=settings, validated=sources, as_of=as_of,
                                              horizon=horizon, raw_uri=raw_uri, window=window), latest)
            results.append(EtlResult(snapshot, built, time.perf_counter() - started))
    return results


def _check_date(as_of: dt.date, window: tuple[dt.date, dt.date], horizon: int | None) -> None:
    first, last = window
    if not first <= as_of <= last:
        raise EtlError(f"as-of date {as_of} is outside the raw data window {first}..{last}")
    if horizon is not None and as_of + dt.timedelta(days=horizon) > last:
        raise EtlError(f"a {horizon}-day label after {as_of} needs data up to {as_of + dt.timedelta(days=horizon)}, "
                       f"but the raw data ends on {last}; choose an earlier --as-of or use --scoring")


def _write(tmp: str, settings: Settings, validated: Callable[[], Validated],
           as_of: dt.date, horizon: int | None, raw_uri: str, window: tuple[dt.date, dt.date]) -> dict[str, Any]:
    """Features at ``as_of``, the quarantine and the known contacts into ``tmp``; returns the manifest."""
    import ray.data

    tables, reports, quarantine = validated()
    features = build_features(tables, as_of, horizon).persist()
    rows = features.count()
    if rows == 0:
        raise EtlError(f"no customer is active on {as_of}")
    parts = laid_out(features, rows)
    contacts = known_contacts(tables, as_of)
    with spark_writable(tmp, settings) as out:
        parts.write.parquet(storage.join(out, "data"))
        quarantine.write.partitionBy("source").parquet(storage.join(out, "quarantine"))
        contacts.coalesce(1).write.parquet(storage.join(out, CONTACTS))
    manifest = {
        "kind": "raw",
        "as_of": str(as_of),
        "horizon_days": horizon,
        "label": horizon is not None,
        "label_rate": _label_rate(features) if horizon is not None else None,
        "rows": rows,
        "data_window": [str(d) for d in window],
        "raw_uri": raw_uri,
        "code_version": code_version(),
        "features": FEATURES.to_json(),
        "schema_hash": FEATURES.schema_hash,
        "sources": {r.source: {**asdict(r), "quarantined_by_kind": r.by_kind()} for r in reports},
        "profile": profile(ray.data.from_spark(parts), FEATURES.names),
        "contacts": contacts.count(),
    }
    features.unpersist()
    return manifest


def known_contacts(tables: dict[str, DataFrame], as_of: dt.date) -> DataFrame:
    """The valid retention contacts made on or before ``as_of`` (what the business knew then)."""
    from pyspark.sql import functions as F

    return tables[CONTACTS].filter(F.col("contact_date") <= F.lit(as_of))


def _label_rate(features: DataFrame) -> float:
    from pyspark.sql import functions as F

    row = features.agg(F.avg("label")).first()
    assert row is not None
    return float(row[0])
