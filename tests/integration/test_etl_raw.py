"""Raw sources -> snapshot through Spark on Ray (RayDP), on generated data with injected defects."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.settings import Settings
from features import raw_etl, validation
from features.definitions import FEATURES
from features.sources import SOURCES
from simulator import generate

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 5, 20)


@pytest.fixture(scope="module")
def raw(ray_cluster, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(str(out), customers=1_500, days=80, seed=11, start_date="2026-04-01", defect_rate=0.02,
             shard_size=1_500)
    return out / "raw"


@pytest.fixture(scope="module")
def built(spark, raw, tmp_path_factory):
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"))
    return raw_etl.run(spark, settings, str(raw), AS_OF, horizon_days=30)


def test_the_snapshot_reports_every_catalogue_source(built):
    assert set(built.snapshot.manifest["sources"]) == {s.name for s in SOURCES}


def test_every_injected_defect_is_caught_and_counts_reconcile(raw, built):
    injected = json.loads((raw / "_manifest.json").read_text())["sources"]
    found = built.snapshot.manifest["sources"]
    for name, gen in injected.items():
        rep, defects = found[name], gen["defects"]
        assert rep["rows_in"] == gen["rows"], name
        assert rep["rows_in"] == rep["rows_used"] + sum(rep["quarantined"].values()) + rep["duplicates_removed"]
        assert rep["duplicates_removed"] == defects.get("duplicate", 0), name
        assert rep["late_arrivals"] == defects.get("late_arrival", 0), name
        expected = {k: v for k, v in defects.items() if k not in ("duplicate", "late_arrival") and v}
        assert rep["quarantined_by_kind"] == expected, name


def test_the_quarantine_holds_every_quarantined_row_with_its_rule_and_record(built):
    found = built.snapshot.manifest["sources"]
    quarantine = pq.read_table(Path(built.snapshot.uri, "quarantine")).to_pandas()
    assert len(quarantine) == sum(sum(r["quarantined"].values()) for r in found.values())
    assert quarantine["rule"].str.contains(":").all() and quarantine["record"].str.startswith("{").all()


def test_the_snapshot_is_published_with_its_success_markers(built):
    snap = built.snapshot
    assert (Path(snap.uri) / "_SUCCESS").exists() and (Path(snap.uri) / "data" / "_SUCCESS").exists()


def test_the_manifest_records_the_schema_the_as_of_date_and_the_label(built):
    m = built.snapshot.manifest
    assert m["schema_hash"] == FEATURES.schema_hash and m["as_of"] == str(AS_OF) and m["label"] is True


def test_the_manifest_records_the_window_of_the_raw_data(built):
    assert built.snapshot.manifest["data_window"] == ["2026-04-01", "2026-06-19"]


def test_the_snapshot_columns_are_the_id_the_features_the_label_and_the_as_of_date(built):
    df = built.snapshot.to_pandas()
    assert list(df.columns) == ["customer_id", *FEATURES.names, "label", "as_of"]


def test_the_snapshot_has_one_row_per_customer(built):
    df = built.snapshot.to_pandas()
    assert df["customer_id"].is_unique and len(df) == built.snapshot.manifest["rows"] > 1_000


def test_the_label_rate_is_plausible(built):
    assert 0.02 < built.snapshot.manifest["label_rate"] < 0.25


def test_the_manifest_profiles_every_feature(built):
    assert set(built.snapshot.manifest["profile"]) == set(FEATURES.names)


def test_features_never_peek_past_the_as_of_date(spark, raw, built, tmp_path):
    """Rewrite the future: drop every partition after the as-of date and move every future
    churn date. Features at the as-of date must not move."""
    future = tmp_path / "raw"
    shutil.copytree(raw, future)
    for source in SOURCES:
        if source.is_event_stream:
            for part in (future / source.name).glob("date=*"):
                if dt.date.fromisoformat(part.name[5:]) > AS_OF:
                    shutil.rmtree(part)
    subs_file = next((future / "subscriptions").glob("*.parquet"))
    subs = pq.read_table(subs_file).to_pandas()
    later = subs["end_date"].notna() & (pd.to_datetime(subs["end_date"]).dt.date > AS_OF)
    assert later.sum() > 0
    subs.loc[later, "end_date"] = AS_OF + dt.timedelta(days=1)
    subs.to_parquet(subs_file, index=False)

    rebuilt = raw_etl.run(spark, Settings(state_dir=tmp_path / "state"), str(future), AS_OF, scoring=True)
    assert rebuilt.snapshot.id != built.snapshot.id
    before = built.snapshot.to_pandas().set_index("customer_id").sort_index()[FEATURES.names]
    after = rebuilt.snapshot.to_pandas().set_index("customer_id").sort_index()[FEATURES.names]
    pd.testing.assert_frame_equal(before, after)


def test_rerun_reuses_the_immutable_snapshot(spark, raw, built):
    settings = Settings(state_dir=Path(built.snapshot.uri).parents[2])
    again = raw_etl.run(spark, settings, str(raw), AS_OF, horizon_days=30)
    assert again.snapshot.id == built.snapshot.id and again.built is False


def test_defect_rate_over_the_limit_fails_with_a_summary(spark, raw, tmp_path):
    settings = Settings(state_dir=tmp_path, etl={"max_defect_rate": 0.001})
    with pytest.raises(validation.DefectRateExceeded, match=r"usage_daily: \d+\.\d% invalid \(limit 0\.1%\)"):
        raw_etl.run(spark, settings, str(raw), AS_OF)
    assert not (tmp_path / "data" / "snapshots" / "LATEST").exists()


def test_a_missing_source_is_named(spark, raw, tmp_path):
    broken = tmp_path / "raw"
    shutil.copytree(raw, broken)
    shutil.rmtree(broken / "nps_surveys")
    with pytest.raises(validation.SourceError, match="'nps_surveys' is missing"):
        raw_etl.run(spark, Settings(state_dir=tmp_path), str(broken), AS_OF)


def test_an_empty_source_is_named(spark, raw, tmp_path):
    broken = tmp_path / "raw"
    shutil.copytree(raw, broken)
    shutil.rmtree(broken / "nps_surveys")
    (broken / "nps_surveys").mkdir()
    with pytest.raises(validation.SourceError, match="'nps_surveys' is empty"):
        raw_etl.run(spark, Settings(state_dir=tmp_path), str(broken), AS_OF)


def test_label_horizon_past_the_data_is_refused(spark, raw, tmp_path):
    with pytest.raises(raw_etl.EtlError, match="raw data ends on 2026-06-19"):
        raw_etl.run(spark, Settings(state_dir=tmp_path), str(raw), dt.date(2026, 6, 10), horizon_days=30)
