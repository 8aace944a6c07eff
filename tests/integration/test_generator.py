"""The synthetic raw-data generator on the real local Ray cluster, one dataset for the module:
layout, contracts, defect accounting and the churn process as the written files show them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.sources import SOURCES, SOURCES_BY_NAME
from simulator import DEFECT_KINDS

from _generated import (
    START,
    defects_on_disk,
    duplicated,
    files_of,
    generate_raw,
    manifest_of,
    parse,
    read_raw,
)


@pytest.fixture(scope="module")
def dataset(ray_cluster, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_raw(out)
    return out


@pytest.fixture(scope="module")
def truth(dataset) -> pd.DataFrame:
    return pq.read_table(dataset / "truth" / "customers.parquet").to_pandas()


def test_the_manifest_lists_every_catalogue_source(dataset):
    manifest = manifest_of(dataset)
    assert len(SOURCES) >= 20 and set(manifest["sources"]) == {s.name for s in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_every_catalogue_source_is_written_with_its_layout(dataset, source):
    entry = manifest_of(dataset)["sources"][source.name]
    files = files_of(dataset, source)
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
    entry = manifest_of(dataset)["sources"][source.name]
    frame = read_raw(dataset, source)
    assert list(frame.columns[: len(source.columns)]) == [c.name for c in source.columns]
    assert entry["rows"] == len(frame) == entry["clean_rows"] + entry["defects"]["duplicate"]
    if source.format == "parquet":
        schema = pq.read_schema(files_of(dataset, source)[0])
        expected = {"string": "string", "int64": "int64", "float64": "double", "bool": "bool",
                    "date": "date32[day]", "timestamp": "timestamp[us]"}
        assert [str(t) for t in schema.types] == [expected[c.dtype] for c in source.columns]
    assert defects_on_disk(frame, source) == entry["defects"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_each_shard_breaks_round_clean_rows_times_rate(dataset, source):
    manifest = manifest_of(dataset)
    frame = read_raw(dataset, source)
    shard = frame["_file"].str.extract(r"part-(\d+)\.", expand=False)
    clean_per_shard = (~duplicated(frame, source)).groupby(shard).sum()
    rate = 0.0 if source.name == "plans_catalogue" else manifest["defect_rate"]
    expected = sum(round(clean * rate) for clean in clean_per_shard)
    assert sum(manifest["sources"][source.name]["defects"].values()) == expected


def test_every_defect_kind_occurs_where_it_applies(dataset):
    kinds_seen = set()
    for name, entry in manifest_of(dataset)["sources"].items():
        kinds_seen |= {k for k, v in entry["defects"].items() if v}
        if not SOURCES_BY_NAME[name].is_event_stream:
            assert entry["defects"]["late_arrival"] == 0
        if SOURCES_BY_NAME[name].format == "parquet":
            assert entry["defects"]["malformed"] == 0
    assert kinds_seen == set(DEFECT_KINDS)


def test_the_truth_has_one_row_per_customer(truth):
    assert len(truth) == 3_000 and truth["customer_id"].is_unique


def test_the_churn_rate_of_existing_customers_is_plausible(dataset, truth):
    start, end = pd.Timestamp(START), pd.Timestamp(manifest_of(dataset)["end_date"])
    churn = pd.to_datetime(truth["churn_date"])
    existing = pd.to_datetime(truth["signup_date"]) < start
    assert 0.10 <= (existing & (churn <= end)).sum() / existing.sum() <= 0.30


def test_churners_leave_no_trace_after_their_churn_date(dataset, truth):
    end = pd.Timestamp(manifest_of(dataset)["end_date"])
    churn = pd.to_datetime(truth["churn_date"])
    last_day = churn.fillna(end).clip(upper=end).set_axis(truth["customer_id"])
    for source in SOURCES:
        if source.is_event_stream and "customer_id" in {c.name for c in source.columns}:
            frame = read_raw(dataset, source)
            when = parse(frame[source.event_time], "timestamp", source.format).dt.normalize()
            limit = frame["customer_id"].map(last_day)
            assert not (when > limit).any(), source.name


def test_subscriptions_end_on_the_churn_date(dataset, truth):
    churn = pd.to_datetime(truth["churn_date"])
    subs = read_raw(dataset, SOURCES_BY_NAME["subscriptions"]).drop_duplicates("subscription_id")
    ended = subs.dropna(subset=["customer_id", "end_date"]).set_index("customer_id")["end_date"]
    assert (pd.to_datetime(ended) == churn.set_axis(truth["customer_id"]).reindex(ended.index)).all()
