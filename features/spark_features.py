"""Point-in-time customer features in Spark, built from ``features.definitions``.

Only records known at the as-of date are used: event time before the end of the as-of day
*and* arrival date at or before it (a late record that arrived afterwards was not known yet).
The label looks only after the as-of date: the subscription ended within the horizon.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import TYPE_CHECKING

from core.schema import AS_OF, CUSTOMER_ID, LABEL
from features.definitions import DEFINITIONS, Attribute, FeatureDefinition, Ratio, RegionAgg, WindowAgg
from features.validation import ARRIVAL

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

def _known_events(df: DataFrame, time_col: str, as_of: dt.date, max_window: int) -> DataFrame:
    from pyspark.sql import functions as F

    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    start = end - dt.timedelta(days=max_window)
    return df.filter((F.col(time_col) >= F.lit(start)) & (F.col(time_col) < F.lit(end))
                     & (F.col(ARRIVAL) <= F.lit(as_of)))


def _window_expr(d: FeatureDefinition, time_col: str, as_of: dt.date) -> Column:
    """One aggregate expression for a windowed feature (the window is a condition, so every
    window of a source is computed in a single pass)."""
    from pyspark.sql import functions as F

    agg: WindowAgg | RegionAgg = d.compute  # type: ignore[assignment]
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    cond = F.col(time_col) >= F.lit(end - dt.timedelta(days=d.spec.window_days or 0))
    where = getattr(agg, "where", None)
    if where:
        cond = cond & F.col(where[0]).cast("string").isin(*where[1])
    value = F.col(agg.column) if agg.column else F.lit(1)
    picked = F.when(cond, value)
    exprs = {
        "count": lambda: F.sum(F.when(cond, 1).otherwise(0)),
        "sum": lambda: F.sum(picked),
        "mean": lambda: F.avg(picked),
        "max": lambda: F.max(picked),
        "last": lambda: F.max_by(picked, F.when(cond, F.col(time_col))),
        "days_since": lambda: F.datediff(F.lit(as_of), F.to_date(F.max(F.when(cond, F.col(time_col))))),
    }
    return exprs[agg.fn]().cast("double").alias(d.spec.name)


def _grouped(definitions: list[FeatureDefinition],
             kind: type[WindowAgg | RegionAgg]) -> dict[str, list[FeatureDefinition]]:
    groups: dict[str, list[FeatureDefinition]] = defaultdict(list)
    for d in definitions:
        if isinstance(d.compute, kind):
            groups[d.compute.source].append(d)
    return groups


def _event_features(tables: dict[str, DataFrame], as_of: dt.date, key: str,
                    kind: type[WindowAgg | RegionAgg]) -> list[DataFrame]:
    out = []
    for source, defs in _grouped(list(DEFINITIONS), kind).items():
        time_col = "event_time"
        events = _known_events(tables[source], time_col, as_of, max(d.spec.window_days or 0 for d in defs))
        out.append(events.groupBy(key).agg(*[_window_expr(d, time_col, as_of) for d in defs]))
    return out


def _current_subscription(tables: dict[str, DataFrame], as_of: dt.date) -> DataFrame:
    """The subscription active at the as-of date (latest start if several)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    subs = tables["subscriptions"].filter(
        (F.col("start_date") <= F.lit(as_of)) & (F.col("end_date").isNull() | (F.col("end_date") > F.lit(as_of))))
    latest = Window.partitionBy(CUSTOMER_ID).orderBy(F.col("start_date").desc(), F.col("subscription_id"))
    return subs.withColumn("__n", F.row_number().over(latest)).filter("__n = 1").drop("__n")


def _plan_at(tables: dict[str, DataFrame], subs: DataFrame, as_of: dt.date) -> DataFrame:
    """Plan id at the as-of date: the last known plan change, else the subscription's plan."""
    from pyspark.sql import functions as F

    changes = _known_events(tables["plan_changes"], "event_time", as_of, 365 * 20)
    last = changes.groupBy(CUSTOMER_ID).agg(F.max_by("to_plan", "event_time").alias("__changed_plan"))
    return (subs.join(last, CUSTOMER_ID, "left")
            .select(CUSTOMER_ID, F.coalesce("__changed_plan", "plan_id").alias("plan_id")))


def category_code(col: Column, categories: tuple[str, ...]) -> Column:
    """Stable code of a category: its index in the declared list; null when not in it."""
    from pyspark.sql import functions as F

    codes = F.create_map(*[x for i, c in enumerate(categories) for x in (F.lit(c), F.lit(i))])
    return codes[col]


def _attribute_expr(d: FeatureDefinition, as_of: dt.date) -> Column:
    from pyspark.sql import functions as F

    attr: Attribute = d.compute  # type: ignore[assignment]
    col = F.col(f"{attr.table}.{attr.column}")
    if attr.transform == "code":
        value = category_code(col, d.spec.categories or ())
    elif attr.transform == "days_since":
        value = F.datediff(F.lit(as_of), col)
    else:
        value = col
    return value.cast("double").alias(d.spec.name)


def _device_features(tables: dict[str, DataFrame]) -> DataFrame:
    from pyspark.sql import functions as F

    aggs = {"count": F.count, "max": F.max, "any": lambda c: F.max(F.col(c).cast("int"))}
    exprs = [aggs[d.compute.transform](d.compute.column).cast("double").alias(d.spec.name)
             for d in DEFINITIONS if isinstance(d.compute, Attribute) and d.compute.table == "device"]
    return tables["device_inventory"].groupBy(CUSTOMER_ID).agg(*exprs)


def build_features(tables: dict[str, DataFrame], as_of: dt.date, horizon_days: int | None) -> DataFrame:
    """One row per customer active at ``as_of``: ``customer_id``, every feature (double, defaults
    applied), ``as_of``, and ``label`` when ``horizon_days`` is given."""
    from pyspark.sql import functions as F

    customers = (tables["crm_customers"].filter(F.col("signup_date") <= F.lit(as_of))
                 .join(tables["demographics"], CUSTOMER_ID, "left").alias("customer"))
    subs = _current_subscription(tables, as_of)
    plans = _plan_at(tables, subs, as_of).join(tables["plans_catalogue"], "plan_id", "left").alias("plan")
    base = customers.join(subs.alias("subscription"), CUSTOMER_ID).join(plans, CUSTOMER_ID, "left")
    attributes = [_attribute_expr(d, as_of) for d in DEFINITIONS
                  if isinstance(d.compute, Attribute) and d.compute.table != "device"]
    label = []
    if horizon_days is not None:
        horizon_end = as_of + dt.timedelta(days=horizon_days)
        label = [F.when(F.col("subscription.end_date") <= F.lit(horizon_end), 1).otherwise(0).alias(LABEL)]
    df = base.select(F.col(CUSTOMER_ID), F.col("customer.region").alias("__region"), *attributes, *label)

    df = df.join(_device_features(tables), CUSTOMER_ID, "left")
    for part in _event_features(tables, as_of, CUSTOMER_ID, WindowAgg):
        df = df.join(part, CUSTOMER_ID, "left")
    for part in _event_features(tables, as_of, "region", RegionAgg):
        df = df.join(part.withColumnRenamed("region", "__region"), "__region", "left")
    for d in DEFINITIONS:
        if isinstance(d.compute, Ratio):
            num, den = F.col(d.compute.numerator), F.col(d.compute.denominator)
            df = df.withColumn(d.spec.name, F.when(den != 0, num / den))
    defaults: dict[str, bool | float | int | str] = {
        d.spec.name: d.spec.default for d in DEFINITIONS if d.spec.default is not None}
    df = df.fillna(defaults)
    features = [F.col(d.spec.name).cast("float").alias(d.spec.name) for d in DEFINITIONS]
    return df.select(CUSTOMER_ID, *features, *([F.col(LABEL).cast("byte")] if label else []),
                     F.lit(as_of).alias(AS_OF))
