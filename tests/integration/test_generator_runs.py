"""Generator runs of their own on the real local Ray cluster: determinism, the in-process runner,
a drift scenario, and that the churn label is learnable (but not trivially). Each run is made
once per module; the tests assert on its files."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from features.sources import SOURCES_BY_NAME

from _generated import START, churn_features, generate_raw, hashes, holdout_auc, read_raw


@pytest.fixture(scope="module")
def three_small_runs(ray_cluster, tmp_path_factory) -> SimpleNamespace:
    """Runs a and b with the same seed, c with another one."""
    tmp = tmp_path_factory.mktemp("seeds")
    small = {"customers": 600, "days": 20, "shard_size": 300}
    generate_raw(tmp / "a", **small)
    generate_raw(tmp / "b", **small)
    generate_raw(tmp / "c", **small, seed=12)
    a, b, c = (hashes(tmp / x) for x in "abc")
    return SimpleNamespace(a=a, b=b, c=c)


def test_same_seed_gives_identical_files(three_small_runs):
    assert three_small_runs.a == three_small_runs.b and len(three_small_runs.a) > 100


def test_another_seed_gives_other_files(three_small_runs):
    assert three_small_runs.a != three_small_runs.c


def test_in_process_runner_writes_the_same_files_as_ray(ray_cluster, tmp_path):
    small = {"customers": 400, "days": 10, "shard_size": 200}
    generate_raw(tmp_path / "ray", **small)
    generate_raw(tmp_path / "local", **small, use_ray=False)
    assert hashes(tmp_path / "ray") == hashes(tmp_path / "local")


# --------------------------------------------------------------------------- price increase drift
@pytest.fixture(scope="module")
def price_increase(ray_cluster, tmp_path_factory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("price-increase")
    result = generate_raw(out, drift="price_increase", drift_start="2026-05-01", defect_rate=0.0)
    invoices = read_raw(out, SOURCES_BY_NAME["billing_invoices"])
    region = read_raw(out, SOURCES_BY_NAME["crm_customers"]).set_index("customer_id")["region"]
    invoices["region"] = invoices["customer_id"].map(region)
    invoices["after"] = invoices["event_time"] >= pd.Timestamp("2026-05-01")
    mean = invoices.groupby(["region", "after"])["amount"].mean().unstack()
    return SimpleNamespace(manifest=result.manifest, lift=mean[True] / mean[False])


def test_price_increase_drift_is_recorded_for_east_invoices(price_increase):
    assert price_increase.manifest["drift"]["regions"] == ["east"]
    assert "billing_invoices" in price_increase.manifest["drift"]["sources"]


def test_price_increase_drift_raises_east_invoices(price_increase):
    assert price_increase.lift["east"] >= 1.15


def test_price_increase_drift_leaves_other_regions_invoices(price_increase):
    lift = price_increase.lift
    assert (lift.drop("east").sub(1).abs() < 0.08).all()


# --------------------------------------------------------------------------- learnability
@pytest.fixture(scope="module")
def learnable(ray_cluster, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("learnable")
    generate_raw(out, customers=8_000, days=90, shard_size=4_000, defect_rate=0.01)
    return churn_features(out, pd.Timestamp(START) + pd.Timedelta(days=60))


@pytest.mark.slow
def test_the_30_day_churn_rate_is_plausible(learnable):
    assert 0.02 < learnable["label"].mean() < 0.25


@pytest.mark.slow
def test_churn_is_learnable_but_not_trivially(learnable):
    assert 0.80 <= holdout_auc(learnable) <= 0.92
