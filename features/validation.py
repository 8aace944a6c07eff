"""Data contracts of the raw sources, enforced in Spark.

Every row ends up in exactly one place: used, quarantined with the rule it broke, or removed
as an exact duplicate, so ``rows_in == used + quarantined + duplicates`` always holds. Text
sources (CSV, JSON lines) are read as strings and cast here, so a value that does not parse
is caught as ``malformed`` instead of silently becoming null.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from core import storage
from features.sources import Column, Source

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

ARRIVAL = "_arrival_date"
REASON = "_reason"
COPIES = "_copies"
_TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss"
_SPARK_TYPES = {"string": "string", "int64": "bigint", "float64": "double", "bool": "boolean",
                "date": "date", "timestamp": "timestamp"}


class SourceError(ValueError):
    """A raw source is missing, empty or unreadable."""


class DefectRateExceeded(ValueError):
    """At least one source has more invalid rows than its contract tolerates."""


@dataclass
class SourceReport:
    source: str
    rows_in: int
    duplicates_removed: int
    quarantined: dict[str, int] = field(default_factory=dict)  # rule -> rows
    rows_used: int = 0
    late_arrivals: int = 0

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def defect_rate(self) -> float:
        return (self.quarantined_total + self.duplicates_removed) / self.rows_in if self.rows_in else 0.0

    def by_kind(self) -> dict[str, int]:
        """Quarantined rows by kind of defect (the rule without its column)."""
        kinds: dict[str, int] = {}
        for rule, n in self.quarantined.items():
            kind = rule.split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + n
        return kinds

    def reconciles(self) -> bool:
        return self.rows_in == self.rows_used + self.quarantined_total + self.duplicates_removed


def check_present(raw_uri: str, source: Source) -> None:
    """Raise ``SourceError`` naming the source if it has no data files."""
    fs, path = storage.resolve(storage.join(raw_uri, source.name))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"raw source '{source.name}' is missing: nothing at {path}")
    files = [f for f in fs.get_file_info(pafs.FileSelector(path, recursive=True))
             if f.type == pafs.FileType.File and not f.base_name.startswith(("_", "."))]
    if not files or all(f.size == 0 for f in files):
        raise SourceError(f"raw source '{source.name}' is empty: no data files under {path}")


def read_raw(spark: SparkSession, raw_root: str, source: Source) -> DataFrame:
    """The source as stored: typed for Parquet, all strings for text formats, plus arrival date.
    ``raw_root`` is where Spark reads the raw data (``spark_session.spark_readable``)."""
    from pyspark.sql import types as T

    path = storage.join(raw_root, source.name)
    if source.format == "parquet":
        df = spark.read.parquet(path)
    else:
        schema = T.StructType([T.StructField(c.name, T.StringType()) for c in source.columns])
        if source.is_event_stream:
            schema = schema.add(T.StructField("date", T.StringType()))
        reader = spark.read.schema(schema)
        df = reader.option("header", True).csv(path) if source.format == "csv" else reader.json(path)
    if source.is_event_stream:
        df = df.withColumnRenamed("date", ARRIVAL)
    return df


def _typed(col: Column, text: bool) -> SparkColumn:
    from pyspark.sql import functions as F

    raw = F.col(col.name)
    if not text or col.dtype == "string":
        return raw
    if col.dtype == "date":
        return F.to_date(raw, "yyyy-MM-dd")
    if col.dtype == "timestamp":
        return F.to_timestamp(raw, _TS_FORMAT)
    if col.dtype == "bool":
        return F.when(F.lower(raw) == "true", True).when(F.lower(raw) == "false", False)
    return raw.cast(_SPARK_TYPES[col.dtype])


def _rules(col: Column, text: bool) -> list[tuple[SparkColumn, str]]:
    """(broken?, rule name) pairs for one column, in the order they are checked."""
    from pyspark.sql import functions as F

    raw, typed = F.col(col.name), F.col(f"__t_{col.name}")
    rules: list[tuple[SparkColumn, str]] = []
    if not col.nullable:
        rules.append((raw.isNull() | (F.trim(raw.cast("string")) == "") if text else raw.isNull(), f"null:{col.name}"))
    if text and col.dtype != "string":
        rules.append((raw.isNotNull() & (F.trim(raw) != "") & typed.isNull(), f"malformed:{col.name}"))
    if col.min is not None or col.max is not None:
        low = typed < col.min if col.min is not None else F.lit(False)
        high = typed > col.max if col.max is not None else F.lit(False)
        rules.append((typed.isNotNull() & (low | high | F.isnan(typed.cast("double"))), f"out_of_range:{col.name}"))
    if col.allowed:
        rules.append((typed.isNotNull() & ~typed.isin(*col.allowed), f"unknown_category:{col.name}"))
    return rules


def validate(raw: DataFrame, source: Source) -> DataFrame:
    """Typed columns; ``_reason`` set on rows that break the contract (first broken rule wins),
    including ``duplicate_key`` for a second row with the same key; exact duplicates merged into
    one row whose ``_copies`` counts them.

    One shuffle per source: rows are partitioned by their typed key, and since exact duplicates
    share it, merging them (a group by every column, key included) and ranking the key (a window
    on it) run in the same partitions without another exchange.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    text = source.format != "parquet"
    df = raw.select("*", *[_typed(c, text).alias(f"__t_{c.name}") for c in source.columns])
    key = [f"__t_{k}" for k in source.key]
    df = df.repartition(*key).groupBy(*df.columns).agg(F.count(F.lit(1)).alias(COPIES))
    checks = [F.when(broken, F.lit(rule)) for c in source.columns for broken, rule in _rules(c, text)]
    df = df.withColumn(REASON, F.coalesce(*checks))
    order = [F.col(ARRIVAL)] if source.is_event_stream else []
    key_rank = F.row_number().over(Window.partitionBy(*key).orderBy(
        *order, *[F.col(f"__t_{c.name}").asc_nulls_last() for c in source.columns]))
    df = df.withColumn("__rank", F.when(F.col(REASON).isNull(), key_rank))
    df = df.withColumn(REASON, F.when(F.col("__rank") > 1, F.lit("duplicate_key:" + ",".join(source.key)))
                       .otherwise(F.col(REASON)))
    return df.drop("__rank")


def valid_rows(checked: DataFrame, source: Source) -> DataFrame:
    """The typed, valid rows (with arrival date for event streams)."""
    from pyspark.sql import functions as F

    cols = [F.col(f"__t_{c.name}").alias(c.name) for c in source.columns]
    if source.is_event_stream:
        cols.append(F.to_date(F.col(ARRIVAL)).alias(ARRIVAL))
    return checked.filter(F.col(REASON).isNull()).select(*cols)


def quarantined_rows(checked: DataFrame, source: Source) -> DataFrame:
    """Rows that broke a rule, kept whole (as JSON text) with the rule and the source name."""
    from pyspark.sql import functions as F

    raw_cols = [F.col(c.name).cast("string").alias(c.name) for c in source.columns]
    arrival = F.col(ARRIVAL) if source.is_event_stream else F.lit(None).cast("string")
    return checked.filter(F.col(REASON).isNotNull()).select(
        F.lit(source.name).alias("source"), F.col(REASON).alias("rule"),
        arrival.alias("arrival_date"), F.to_json(F.struct(*raw_cols)).alias("record"))


def report(checked: DataFrame, source: Source) -> SourceReport:
    """Counts that reconcile: rows in, duplicates removed, quarantined by rule, used, late (one
    pass over the validated rows: the copies they merged tell the rows read)."""
    from pyspark.sql import functions as F

    late = (F.to_date(F.col(ARRIVAL)) > F.to_date(F.col(f"__t_{source.event_time}"))) if source.is_event_stream \
        else F.lit(False)
    counts = checked.groupBy(REASON).agg(F.count(F.lit(1)).alias("n"), F.sum(COPIES).alias("copies"),
                                         F.sum(F.when(late, 1).otherwise(0)).alias("late")).collect()
    rep = SourceReport(source.name, sum(row["copies"] for row in counts), 0)
    for row in counts:
        if row[REASON] is None:
            rep.rows_used, rep.late_arrivals = row["n"], row["late"]
        else:
            rep.quarantined[row[REASON]] = row["n"]
    rep.duplicates_removed = rep.rows_in - rep.rows_used - rep.quarantined_total
    return rep


def enforce_thresholds(reports: list[SourceReport], limits: dict[str, float]) -> None:
    """Fail with a readable summary if any source's defect rate passes its limit."""
    over = [r for r in reports if r.defect_rate > limits[r.source]]
    if over:
        lines = [f"  {r.source}: {r.defect_rate:.1%} invalid (limit {limits[r.source]:.1%}); "
                 f"{r.duplicates_removed} duplicates, quarantined {dict(sorted(r.quarantined.items()))}"
                 for r in over]
        raise DefectRateExceeded("defect rate over the limit in " + ", ".join(r.source for r in over) + ":\n"
                                 + "\n".join(lines))
