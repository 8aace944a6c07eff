"""Helpers of the generator tests: generating a small raw dataset, and reading its files back the
way the ETL will (rows as written, parsed to their catalogue types, defects counted on disk)."""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.sources import SOURCES_BY_NAME, Source
from simulator import DEFECT_KINDS, generate

START = "2026-04-01"


def generate_raw(out: Path, **overrides):
    args = {"customers": 3_000, "days": 60, "seed": 11, "start_date": START, "defect_rate": 0.02, "shard_size": 1_500}
    return generate(str(out), **{**args, **overrides})


def manifest_of(out: Path) -> dict:
    return json.loads((out / "raw" / "_manifest.json").read_text())


def files_of(out: Path, source: Source) -> list[Path]:
    return sorted((out / "raw" / source.name).rglob(f"part-*.{source.format}"))


def read_raw(out: Path, source: Source) -> pd.DataFrame:
    """Rows as written (csv: text; jsonl: JSON values; parquet: typed), with their file and partition."""
    files = files_of(out, source)
    if source.format == "jsonl":
        texts = [f.read_text().splitlines() for f in files]
        frame = pd.DataFrame(json.loads("[" + ",".join(line for t in texts for line in t) + "]"), dtype=object)
        sizes = [len(t) for t in texts]
    else:
        strings = {c.name: pa.string() for c in source.columns}
        options = pacsv.ConvertOptions(column_types=strings, null_values=[""], strings_can_be_null=True)
        read = pq.read_table if source.format == "parquet" else lambda f: pacsv.read_csv(f, convert_options=options)
        tables = [read(f) for f in files]
        frame = pa.concat_tables(tables).to_pandas()
        sizes = [t.num_rows for t in tables]
    frame["_file"] = np.repeat([str(f) for f in files], sizes)
    frame["_partition"] = np.repeat([f.parent.name.removeprefix("date=") for f in files], sizes)
    return frame


def parse(raw: pd.Series, dtype: str, fmt: str) -> pd.Series:
    """Values parsed to their catalogue type; NaN/NaT where null or unparsable."""
    if fmt == "parquet":
        return raw
    if dtype in ("int64", "float64"):
        if fmt == "jsonl":
            raw = raw.map(lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
        return pd.to_numeric(raw, errors="coerce")
    if dtype in ("date", "timestamp"):
        return pd.to_datetime(raw, format="%Y-%m-%d" if dtype == "date" else "%Y-%m-%dT%H:%M:%S", errors="coerce")
    if dtype == "bool":
        mapping = {True: True, False: False} if fmt == "jsonl" else {"true": True, "false": False}
        return raw.map(lambda v: mapping.get(v) if v is not None and not pd.isna(v) else None)
    return raw


def duplicated(frame: pd.DataFrame, source: Source) -> pd.Series:
    """Exact copies of an earlier row of the same file."""
    return frame.astype(str).duplicated(subset=[c.name for c in source.columns] + ["_file"])


def defects_on_disk(frame: pd.DataFrame, source: Source) -> dict[str, int]:
    """Count each defect kind by inspecting the written rows, the way the ETL will."""
    found = dict.fromkeys(DEFECT_KINDS, 0)
    for c in source.columns:
        raw = frame[c.name]
        present = raw.notna()
        parsed = parse(raw, c.dtype, source.format)
        if not c.nullable:
            found["null"] += int((~present).sum())
        found["malformed"] += int((present & parsed.isna()).sum())
        if c.min is not None:
            found["out_of_range"] += int((parsed < c.min).sum())
        if c.max is not None:
            found["out_of_range"] += int((parsed > c.max).sum())
        if c.allowed:
            found["unknown_category"] += int((present & ~raw.isin(c.allowed)).sum())
    found["duplicate"] = int(duplicated(frame, source).sum())
    if source.is_event_stream:
        event_date = parse(frame[source.event_time], "timestamp", source.format).dt.strftime("%Y-%m-%d")
        found["late_arrival"] = int((event_date.notna() & (event_date != frame["_partition"])).sum())
    return found


def hashes(out: Path) -> dict[str, str]:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def churn_features(out: Path, as_of: pd.Timestamp) -> pd.DataFrame:
    """Deliberately simple per-customer features at ``as_of`` (the real ETL comes later), and
    the label: churn in (as_of, as_of + 30 days]."""
    @functools.cache
    def events(name: str) -> pd.DataFrame:
        source = SOURCES_BY_NAME[name]
        frame = read_raw(out, source)
        frame["t"] = parse(frame["event_time"], "timestamp", source.format)
        return frame[(frame["t"] < as_of + pd.Timedelta(days=1))]

    def window(frame: pd.DataFrame, days: int) -> pd.DataFrame:
        return frame[frame["t"] > as_of - pd.Timedelta(days=days) + pd.Timedelta(days=1)]

    truth = pq.read_table(out / "truth" / "customers.parquet").to_pandas().set_index("customer_id")
    churn = pd.to_datetime(truth["churn_date"])
    signup = pd.to_datetime(truth["signup_date"])
    alive = truth.index[(signup <= as_of) & ~(churn <= as_of)]
    usage = events("usage_daily")
    web = events("web_visits")
    nps = events("nps_surveys").sort_values("t")
    subs = read_raw(out, SOURCES_BY_NAME["subscriptions"]).drop_duplicates("customer_id").set_index("customer_id")
    f = pd.DataFrame(index=alive)
    for days in (7, 30):
        recent = window(usage, days).groupby("customer_id")
        f[f"data_{days}"] = recent["data_mb"].mean()
        f[f"voice_{days}"] = recent["voice_minutes"].mean()
    f["data_trend"] = f["data_7"] / f["data_30"]
    f["voice_trend"] = f["voice_7"] / f["voice_30"]
    f["tickets_30"] = window(events("support_tickets"), 30).groupby("customer_id").size()
    f["sessions_7"] = window(events("app_sessions"), 7).groupby("customer_id").size()
    f["sessions_30"] = window(events("app_sessions"), 30).groupby("customer_id").size()
    f["cancel_30"] = window(web[web["page"] == "cancel"], 30).groupby("customer_id").size()
    f["visits_30"] = window(web, 30).groupby("customer_id").size()
    f["complaints"] = events("complaints").groupby("customer_id").size()
    f["last_nps"] = pd.to_numeric(nps.groupby("customer_id")["score"].last(), errors="coerce")
    f["late_payments"] = events("late_payments").groupby("customer_id").size()
    f["tenure_days"] = (as_of - signup).dt.days
    f["month_to_month"] = subs["contract_type"] == "month_to_month"
    f["two_year"] = subs["contract_type"] == "two_year"
    f["electronic_check"] = subs["payment_method"] == "electronic_check"
    counts = ["tickets_30", "sessions_7", "sessions_30", "cancel_30", "visits_30", "complaints", "late_payments"]
    f[counts] = f[counts].fillna(0)
    f["label"] = ((churn > as_of) & (churn <= as_of + pd.Timedelta(days=30))).reindex(alive).astype(int)
    return f.astype(float)


def holdout_auc(features: pd.DataFrame, seed: int = 0) -> float:
    import xgboost
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    x, y = features.drop(columns="label"), features["label"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    model = xgboost.XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.05, subsample=0.8, n_jobs=2)
    model.fit(x_train, y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


