"""Bring your own customer table: a flat file that is already one row per customer
(for example the public Telco churn dataset) -> a snapshot with the same layout as the raw
path, so training, serving and scoring work on it unchanged.

Column types are inferred (numeric when every non-blank cell parses as a number, otherwise
a category with its values sorted for stable codes) and can be overridden. Rules, stated:
- a blank cell is a missing value: counted per column in the manifest, filled with the
  column's ``--default`` when one is given, else left missing (XGBoost routes it natively);
- a numeric cell that does not parse, a missing or duplicated id, or a label that is not a
  yes/no value sends the row to quarantine with the rule it broke.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any, cast

from core import storage
from core.provenance import code_version, fingerprint
from core.schema import AS_OF, CUSTOMER_ID, LABEL
from core.settings import Settings
from features.feature_set import FeatureSet, FeatureSpec
from features.profile import profile
from features.raw_etl import EtlError, EtlResult
from features.snapshot import laid_out, publish
from features.spark_features import category_code
from features.spark_session import spark_readable, spark_writable
from features.validation import REASON, SourceReport

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from features.feature_set import FeatureDtype

POSITIVE = ("yes", "true", "1", "y")
NEGATIVE = ("no", "false", "0", "n")
TYPE_CHOICES = ("float", "int", "bool", "category", "drop")
MAX_CATEGORIES = 100


def read_table(spark: SparkSession, uri: str, path: str) -> DataFrame:
    """The table with every column as a string (CSV or Parquet); ``path``: where Spark reads ``uri``."""
    from pyspark.sql import functions as F

    if uri.endswith(".parquet"):
        df = spark.read.parquet(path)
        return df.select(*[F.col(c).cast("string").alias(c) for c in df.columns])
    return spark.read.option("header", True).option("inferSchema", False).csv(path)


def infer_types(df: DataFrame, columns: list[str], overrides: dict[str, str]) -> dict[str, tuple[str, tuple]]:
    """dtype and categories per column, from one aggregation pass."""
    from pyspark.sql import functions as F

    exprs = []
    for c in columns:
        present = F.trim(F.col(c)) != ""
        number = F.trim(F.col(c)).cast("double")
        exprs += [F.sum(present.cast("int")).alias(f"{c}|n"),
                  F.sum((present & number.isNotNull()).cast("int")).alias(f"{c}|num"),
                  F.sum((present & number.isNotNull() & (number != F.floor(number))).cast("int")).alias(f"{c}|frac"),
                  F.approx_count_distinct(F.when(present, F.col(c))).alias(f"{c}|distinct")]
    row = df.agg(*exprs).first()
    assert row is not None
    stats = row.asDict()
    dtypes = {}
    for c in columns:
        numeric = stats[f"{c}|n"] > 0 and stats[f"{c}|num"] == stats[f"{c}|n"]
        dtypes[c] = overrides.get(c) or (("float" if stats[f"{c}|frac"] else "int") if numeric else "category")
        if dtypes[c] == "category" and stats[f"{c}|distinct"] > MAX_CATEGORIES:
            raise EtlError(f"column '{c}' has about {stats[f'{c}|distinct']} distinct values: too many for a "
                           f"category; drop it with --type {c}=drop or declare it numeric")
    categorical = [c for c, t in dtypes.items() if t == "category"]
    values: dict[str, Any] = {}
    if categorical:
        row = df.agg(*[F.array_sort(F.collect_set(F.when(F.trim(F.col(c)) != "", F.trim(F.col(c))))).alias(c)
                       for c in categorical]).first()
        assert row is not None
        values = row.asDict()
    return {c: (t, tuple(values.get(c) or ())) for c, t in dtypes.items() if t != "drop"}


def _feature_value(c: str, dtype: str, categories: tuple) -> tuple[Any, Any]:
    """(typed value, malformed?) expressions for one column."""
    from pyspark.sql import functions as F

    raw = F.trim(F.col(c))
    present = raw.isNotNull() & (raw != "")
    if dtype == "category":
        return category_code(raw, categories).cast("double"), F.lit(False)
    if dtype == "bool":
        value = F.when(F.lower(raw).isin(*POSITIVE), 1.0).when(F.lower(raw).isin(*NEGATIVE), 0.0)
    else:
        value = raw.cast("double")
    return value, present & value.isNull()


def _checked(df: DataFrame, id_col: str, label_col: str | None, types: dict) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = df.dropDuplicates().withColumn("__row", F.monotonically_increasing_id())
    checks = [F.when(F.col(id_col).isNull() | (F.trim(F.col(id_col)) == ""), F.lit(f"null:{id_col}"))]
    typed = []
    for c, (dtype, cats) in types.items():
        value, malformed = _feature_value(c, dtype, cats)
        typed.append(value.alias(f"__t_{c}"))
        checks.append(F.when(malformed, F.lit(f"malformed:{c}")))
    if label_col:
        lab = F.lower(F.trim(F.col(label_col)))
        typed.append(F.when(lab.isin(*POSITIVE), 1).when(lab.isin(*NEGATIVE), 0).alias("__label"))
        checks.append(F.when(~lab.isin(*POSITIVE, *NEGATIVE) | lab.isNull(), F.lit(f"unknown_category:{label_col}")))
    df = df.select("*", *typed).withColumn(REASON, F.coalesce(*checks))
    first = F.row_number().over(Window.partitionBy(id_col).orderBy("__row"))
    return df.withColumn(REASON, F.when(F.col(REASON).isNull() & (first > 1), F.lit(f"duplicate_key:{id_col}"))
                         .otherwise(F.col(REASON)))


def run(spark: SparkSession, settings: Settings, table_uri: str, id_col: str, label_col: str | None,
        types: dict[str, str], defaults: dict[str, float], as_of: dt.date | None = None) -> EtlResult:
    """Validate the table, infer (or take) column types and publish the snapshot."""
    if not storage.exists(table_uri):
        raise EtlError(f"table not found: {table_uri}")
    with spark_readable(table_uri, settings) as path:
        return _run(spark, settings, table_uri, read_table(spark, table_uri, path), id_col, label_col, types,
                    defaults, as_of or dt.date.today())


def _run(spark: SparkSession, settings: Settings, table_uri: str, raw: DataFrame, id_col: str, label_col: str | None,
         types: dict[str, str], defaults: dict[str, float], as_of: dt.date) -> EtlResult:
    import ray.data
    from pyspark.sql import functions as F

    started = time.perf_counter()
    missing = [c for c in [id_col, label_col, *types, *defaults] if c and c not in raw.columns]
    if missing:
        raise EtlError(f"column(s) {missing} not in {table_uri}; its columns are {raw.columns}")
    bad_types = {c: t for c, t in types.items() if t not in TYPE_CHOICES}
    if bad_types:
        raise EtlError(f"unknown type(s) {bad_types}; choose from {TYPE_CHOICES}")
    name = table_uri.rstrip("/").rsplit("/", 1)[-1]
    snapshot_id = f"{as_of:%Y%m%d}-" + fingerprint(storage.total_bytes(table_uri), name, id_col, label_col,
                                                    sorted(types.items()), sorted(defaults.items()), code_version())

    def write(tmp: str) -> dict[str, Any]:
        columns = [c for c in raw.columns if c not in (id_col, label_col)]
        inferred = infer_types(raw, columns, types)
        feature_set = FeatureSet(tuple(
            FeatureSpec(c, cast("FeatureDtype", dtype), f"column {c} of {name}", name, None, defaults.get(c),
                        cats or None)
            for c, (dtype, cats) in inferred.items()))
        checked = _checked(raw, id_col, label_col, inferred).persist()
        rows_in = raw.count()
        missing_exprs = [F.sum(F.col(f"__t_{c}").isNull().cast("int")).alias(c) for c in feature_set.names]
        label_expr = [F.sum(F.col("__label")).alias("__positives")] if label_col else []
        groups = checked.groupBy(REASON).agg(F.count("*").alias("__n"), *missing_exprs, *label_expr).collect()
        counts = {g[REASON]: g["__n"] for g in groups if g[REASON] is not None}
        valid_group = next((g.asDict() for g in groups if g[REASON] is None), None)
        if valid_group is None:
            raise EtlError(f"no valid row in {table_uri}: quarantined {counts}")
        used = valid_group["__n"]
        missing_values = {c: valid_group[c] for c in feature_set.names}
        valid = checked.filter(F.col(REASON).isNull())
        features = valid.select(
            F.trim(F.col(id_col)).alias(CUSTOMER_ID),
            *[F.coalesce(F.col(f"__t_{f.name}"), F.lit(f.default)).cast("float").alias(f.name) if f.default is not None
              else F.col(f"__t_{f.name}").cast("float").alias(f.name) for f in feature_set.features],
            *([F.col("__label").cast("byte").alias(LABEL)] if label_col else []),
            F.lit(as_of).alias(AS_OF))
        features = laid_out(features, used)
        with spark_writable(tmp, settings) as out:
            features.write.parquet(storage.join(out, "data"))
            checked.filter(F.col(REASON).isNotNull()).select(
                F.lit(name).alias("source"), F.col(REASON).alias("rule"),
                F.lit(None).cast("string").alias("arrival_date"),
                F.to_json(F.struct(*[F.col(c) for c in raw.columns])).alias("record"),
            ).write.partitionBy("source").parquet(storage.join(out, "quarantine"))
        report = SourceReport(name, rows_in, rows_in - used - sum(counts.values()), counts, used)
        manifest = {
            "kind": "table",
            "as_of": str(as_of),
            "horizon_days": None,
            "label": bool(label_col),
            "label_rate": valid_group["__positives"] / used if label_col else None,
            "rows": used,
            "table_uri": table_uri,
            "id_column": id_col,
            "label_column": label_col,
            "code_version": code_version(),
            "features": feature_set.to_json(),
            "schema_hash": feature_set.schema_hash,
            "sources": {name: {**report.__dict__, "quarantined_by_kind": report.by_kind()}},
            "missing_values": {c: n for c, n in missing_values.items() if n},
            "defaults_applied": {c: missing_values[c] for c in defaults if missing_values.get(c)},
            "profile": profile(ray.data.from_spark(features), feature_set.names),
        }
        checked.unpersist()
        return manifest

    snapshot, built = publish(settings, snapshot_id, write)
    return EtlResult(snapshot, built, time.perf_counter() - started)
