"""The synthetic raw-data generator: layout, contracts, defect accounting, the churn process,
drift, determinism, and that the churn label is learnable (but not trivially).

Runs on the real local Ray cluster of ``conftest.ray_cluster``."""
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
import pytest

from features.sources import SOURCES, SOURCES_BY_NAME, Source
from simulator import DEFECT_KINDS, SCENARIOS, generate

START = "2026-04-01"


def _generate(out: Path, **overrides):
    args = {"customers": 3_000, "days": 60, "seed": 11, "start_date": START, "defect_rate": 0.02, "shard_size": 1_500}
    return generate(str(out), **{**args, **overrides})


@pytest.fixture(scope="module")
def dataset(ray_cluster, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    _generate(out)
    return out


def _manifest(out: Path) -> dict:
    return json.loads((out / "raw" / "_manifest.json").read_text())


def _files(out: Path, source: Source) -> list[Path]:
    return sorted((out / "raw" / source.name).rglob(f"part-*.{source.format}"))


def _read_raw(out: Path, source: Source) -> pd.DataFrame:
    """Rows as written (csv: text; jsonl: JSON values; parquet: typed), with their file and partition."""
    files = _files(out, source)
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


def _parse(raw: pd.Series, dtype: str, fmt: str) -> pd.Series:
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


def _duplicated(frame: pd.DataFrame, source: Source) -> pd.Series:
    """Exact copies of an earlier row of the same file."""
    return frame.astype(str).duplicated(subset=[c.name for c in source.columns] + ["_file"])


def _defects_on_disk(frame: pd.DataFrame, source: Source) -> dict[str, int]:
    """Count each defect kind by inspecting the written rows, the way the ETL will."""
    found = dict.fromkeys(DEFECT_KINDS, 0)
    for c in source.columns:
        raw = frame[c.name]
        present = raw.notna()
        parsed = _parse(raw, c.dtype, source.format)
        if not c.nullable:
            found["null"] += int((~present).sum())
        found["malformed"] += int((present & parsed.isna()).sum())
        if c.min is not None:
            found["out_of_range"] += int((parsed < c.min).sum())
        if c.max is not None:
            found["out_of_range"] += int((parsed > c.max).sum())
        if c.allowed:
            found["unknown_category"] += int((present & ~raw.isin(c.allowed)).sum())
    found["duplicate"] = int(_duplicated(frame, source).sum())
    if source.is_event_stream:
        event_date = _parse(frame[source.event_time], "timestamp", source.format).dt.strftime("%Y-%m-%d")
        found["late_arrival"] = int((event_date.notna() & (event_date != frame["_partition"])).sum())
    return found


def test_every_catalogue_source_is_written_with_its_layout(dataset):
    manifest = _manifest(dataset)
    assert len(SOURCES) >= 20 and set(manifest["sources"]) == {s.name for s in SOURCES}
    for source in SOURCES:
        entry = manifest["sources"][source.name]
        files = _files(dataset, source)
        assert entry["files"] == len(files) > 0
        assert entry["bytes"] == sum(f.stat().st_size for f in files)
        assert entry["schema"] == [{"name": c.name, "dtype": c.dtype} for c in source.columns]
        if source.is_event_stream:
            assert all(f.parent.name.startswith("date=") for f in files), source.name
            assert entry["partitioned_by"] == "date"
        else:
            assert [f.parent.name for f in files] == [source.name] * len(files)


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_columns_types_rows_and_defects_match_the_manifest(dataset, source):
    entry = _manifest(dataset)["sources"][source.name]
    frame = _read_raw(dataset, source)
    assert list(frame.columns[: len(source.columns)]) == [c.name for c in source.columns]
    assert entry["rows"] == len(frame) == entry["clean_rows"] + entry["defects"]["duplicate"]
    if source.format == "parquet":
        schema = pq.read_schema(_files(dataset, source)[0])
        expected = {"string": "string", "int64": "int64", "float64": "double", "bool": "bool",
                    "date": "date32[day]", "timestamp": "timestamp[us]"}
        assert [str(t) for t in schema.types] == [expected[c.dtype] for c in source.columns]
    assert _defects_on_disk(frame, source) == entry["defects"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_each_shard_breaks_round_clean_rows_times_rate(dataset, source):
    manifest = _manifest(dataset)
    frame = _read_raw(dataset, source)
    shard = frame["_file"].str.extract(r"part-(\d+)\.", expand=False)
    clean_per_shard = (~_duplicated(frame, source)).groupby(shard).sum()
    rate = 0.0 if source.name == "plans_catalogue" else manifest["defect_rate"]
    expected = sum(round(clean * rate) for clean in clean_per_shard)
    assert sum(manifest["sources"][source.name]["defects"].values()) == expected


def test_every_defect_kind_occurs_where_it_applies(dataset):
    kinds_seen = set()
    for name, entry in _manifest(dataset)["sources"].items():
        kinds_seen |= {k for k, v in entry["defects"].items() if v}
        if not SOURCES_BY_NAME[name].is_event_stream:
            assert entry["defects"]["late_arrival"] == 0
        if SOURCES_BY_NAME[name].format == "parquet":
            assert entry["defects"]["malformed"] == 0
    assert kinds_seen == set(DEFECT_KINDS)


def test_churners_leave_no_trace_after_their_churn_date_and_rate_is_plausible(dataset):
    truth = pq.read_table(dataset / "truth" / "customers.parquet").to_pandas()
    assert len(truth) == 3_000 and truth["customer_id"].is_unique
    start, end = pd.Timestamp(START), pd.Timestamp(_manifest(dataset)["end_date"])
    churn = pd.to_datetime(truth["churn_date"])
    existing = pd.to_datetime(truth["signup_date"]) < start
    assert 0.10 <= (existing & (churn <= end)).sum() / existing.sum() <= 0.30
    last_day = churn.fillna(end).clip(upper=end).set_axis(truth["customer_id"])
    for source in SOURCES:
        if source.is_event_stream and "customer_id" in {c.name for c in source.columns}:
            frame = _read_raw(dataset, source)
            when = _parse(frame[source.event_time], "timestamp", source.format).dt.normalize()
            limit = frame["customer_id"].map(last_day)
            assert not (when > limit).any(), source.name
    subs = _read_raw(dataset, SOURCES_BY_NAME["subscriptions"]).drop_duplicates("subscription_id")
    ended = subs.dropna(subset=["customer_id", "end_date"]).set_index("customer_id")["end_date"]
    assert (pd.to_datetime(ended) == churn.set_axis(truth["customer_id"]).reindex(ended.index)).all()


def _hashes(out: Path) -> dict[str, str]:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_gives_identical_files_and_another_seed_does_not(ray_cluster, tmp_path):
    small = {"customers": 600, "days": 20, "shard_size": 300}
    _generate(tmp_path / "a", **small)
    _generate(tmp_path / "b", **small)
    _generate(tmp_path / "c", **small, seed=12)
    a, b, c = (_hashes(tmp_path / x) for x in "abc")
    assert a == b and len(a) > 100
    assert a != c


def test_in_process_runner_writes_the_same_files_as_ray(ray_cluster, tmp_path):
    small = {"customers": 400, "days": 10, "shard_size": 200}
    _generate(tmp_path / "ray", **small)
    _generate(tmp_path / "local", **small, use_ray=False)
    assert _hashes(tmp_path / "ray") == _hashes(tmp_path / "local")


def test_price_increase_drift_raises_east_invoices_only(ray_cluster, tmp_path):
    result = _generate(tmp_path, drift="price_increase", drift_start="2026-05-01", defect_rate=0.0)
    assert result.manifest["drift"]["regions"] == ["east"]
    assert "billing_invoices" in result.manifest["drift"]["sources"]
    invoices = _read_raw(tmp_path, SOURCES_BY_NAME["billing_invoices"])
    region = _read_raw(tmp_path, SOURCES_BY_NAME["crm_customers"]).set_index("customer_id")["region"]
    invoices["region"] = invoices["customer_id"].map(region)
    invoices["after"] = invoices["event_time"] >= pd.Timestamp("2026-05-01")
    mean = invoices.groupby(["region", "after"])["amount"].mean().unstack()
    lift = mean[True] / mean[False]
    assert lift["east"] >= 1.15
    assert (lift.drop("east").sub(1).abs() < 0.08).all()


def test_unknown_drift_scenario_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid: " + ", ".join(sorted(SCENARIOS))):
        _generate(tmp_path, drift="meteor_strike", use_ray=False)


def churn_features(out: Path, as_of: pd.Timestamp) -> pd.DataFrame:
    """Deliberately simple per-customer features at ``as_of`` (the real ETL comes later), and
    the label: churn in (as_of, as_of + 30 days]."""
    @functools.cache
    def events(name: str) -> pd.DataFrame:
        source = SOURCES_BY_NAME[name]
        frame = _read_raw(out, source)
        frame["t"] = _parse(frame["event_time"], "timestamp", source.format)
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
    subs = _read_raw(out, SOURCES_BY_NAME["subscriptions"]).drop_duplicates("customer_id").set_index("customer_id")
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


@pytest.mark.slow
def test_churn_is_learnable_but_not_trivially(ray_cluster, tmp_path):
    _generate(tmp_path, customers=8_000, days=90, shard_size=4_000, defect_rate=0.01)
    features = churn_features(tmp_path, pd.Timestamp(START) + pd.Timedelta(days=60))
    assert 0.02 < features["label"].mean() < 0.25
    assert 0.80 <= holdout_auc(features) <= 0.92
