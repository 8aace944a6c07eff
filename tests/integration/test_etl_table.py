"""Bring-your-own-table ETL on the real Telco dataset and on defective tables (Spark via RayDP),
and the tuned Telco model's cross-validated AUC. Each table is run through the ETL once per
module; the tests assert on the result."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.settings import Settings
from features import table_etl
from features.raw_etl import EtlError
from features.snapshot import open_snapshot

from support import REPO

pytestmark = pytest.mark.slow


def _settings(state_dir) -> Settings:
    return Settings(state_dir=state_dir, redis_url=None, mlflow_tracking_uri=None)


# --------------------------------------------------------------------------- Telco, blanks defaulted
@pytest.fixture(scope="module")
def telco(spark, telco_csv, tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("telco"))
    return settings, table_etl.run(spark, settings, telco_csv, "customerID", "Churn", {}, {"TotalCharges": 0.0})


@pytest.fixture(scope="module")
def telco_snapshot(telco):
    return telco[1].snapshot


def test_telco_rows_are_all_read_and_used(telco_snapshot):
    m = telco_snapshot.manifest
    assert m["sources"]["telco_customer_churn.csv"]["rows_in"] == 7043
    assert m["rows"] == 7043


def test_telco_blank_total_charges_are_counted_and_defaulted(telco_snapshot):
    m = telco_snapshot.manifest
    assert m["missing_values"] == {"TotalCharges": 11}, "the 11 blank TotalCharges cells are counted"
    assert m["defaults_applied"] == {"TotalCharges": 11}


def test_telco_label_rate_is_the_churn_share(telco_snapshot):
    assert telco_snapshot.manifest["label_rate"] == pytest.approx(1869 / 7043)


def test_telco_feature_set_has_19_features_without_the_id_and_the_label(telco_snapshot):
    fs = telco_snapshot.feature_set
    assert len(fs) == 19 and "customerID" not in fs.names and "Churn" not in fs.names


def test_telco_feature_types_and_categories_are_inferred(telco_snapshot):
    fs = telco_snapshot.feature_set
    assert fs["tenure"].dtype == "int" and fs["TotalCharges"].dtype == "float"
    assert fs["Contract"].categories == ("Month-to-month", "One year", "Two year")


def test_telco_snapshot_has_one_row_per_customer(telco_snapshot):
    df = telco_snapshot.to_pandas()
    assert df["customer_id"].is_unique and len(df) == 7043


def test_telco_blank_cells_get_the_stated_default(telco_snapshot):
    df = telco_snapshot.to_pandas()
    blank = df[df["tenure"] == 0]
    assert len(blank) == 11 and (blank["TotalCharges"] == 0).all(), "stated rule: blank -> --default 0"


def test_telco_snapshot_becomes_latest(telco):
    settings, result = telco
    assert open_snapshot(settings, "latest").id == result.snapshot.id


# --------------------------------------------------------------------------- Telco, no default, a drop
@pytest.fixture(scope="module")
def telco_undefaulted(spark, telco_csv, tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("telco-undefaulted"))
    return table_etl.run(spark, settings, telco_csv, "customerID", "Churn", {"gender": "drop"}, {}).snapshot


def test_blank_cells_stay_missing_without_default(telco_undefaulted):
    df = telco_undefaulted.to_pandas()
    assert int(np.isnan(df["TotalCharges"]).sum()) == 11


def test_a_dropped_column_is_not_a_feature(telco_undefaulted):
    assert "gender" not in telco_undefaulted.feature_set.names


# --------------------------------------------------------------------------- a defective table
@pytest.fixture(scope="module")
def defective(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("defective")
    table = tmp / "customers.csv"
    table.write_text(
        "id,plan,monthly,churned\n"
        "a,basic,10.5,Yes\n"
        "b,premium,20,No\n"
        "b,basic,30,No\n"          # duplicate id -> quarantined
        "c,basic,n/a,No\n"         # malformed number
        ",basic,12,No\n"           # missing id
        "d,basic,11,Maybe\n"       # label not yes/no
        "e,basic,,Yes\n"           # blank number: missing, kept
        "a,basic,10.5,Yes\n"       # exact duplicate row -> removed
    )
    return table_etl.run(spark, _settings(tmp), str(table), "id", "churned", {"monthly": "float"}, {}).snapshot


@pytest.fixture(scope="module")
def defective_source(defective) -> dict:
    return defective.manifest["sources"]["customers.csv"]


def test_defective_table_rows_read_used_and_removed_are_counted(defective_source):
    s = defective_source
    assert s["rows_in"] == 8
    assert s["duplicates_removed"] == 1
    assert s["rows_used"] == 3


def test_defective_table_rows_are_quarantined_by_rule(defective_source):
    assert defective_source["quarantined"] == {"duplicate_key:id": 1, "malformed:monthly": 1, "null:id": 1,
                                               "unknown_category:churned": 1}


def test_defective_table_counts_reconcile(defective_source):
    s = defective_source
    assert s["rows_in"] == s["rows_used"] + sum(s["quarantined"].values()) + s["duplicates_removed"]


def test_defective_table_quarantine_holds_each_quarantined_row(defective, defective_source):
    quarantine = pq.read_table(defective.uri + "/quarantine").to_pandas()
    assert sorted(quarantine["rule"]) == sorted(defective_source["quarantined"])


def test_defective_table_blank_number_is_kept_as_missing(defective):
    assert defective.manifest["missing_values"] == {"monthly": 1}


def test_unknown_column_is_named(spark, settings, telco_csv):
    with pytest.raises(EtlError, match="customer_key"):
        table_etl.run(spark, settings, telco_csv, "customer_key", "Churn", {}, {})


# --------------------------------------------------------------------------- the tuned Telco model
@pytest.fixture(scope="module")
def telco_cv(telco_snapshot):
    """5-fold CV on the Telco snapshot with the configuration `churn tune` found (committed in
    tuning/configs/telco.json)."""
    from ml.data import Labelled
    from ml.training.cross_validation import cross_validated_auc

    tuned = json.loads((REPO / "tuning" / "configs" / "telco.json").read_text())
    data = Labelled.from_frame(telco_snapshot.to_pandas(), telco_snapshot.feature_set)
    folds = cross_validated_auc(data.X, data.y, data.customer_ids, tuned["params"], tuned["num_boost_round"], 5, 42)
    return data, folds


def test_telco_tuned_model_cross_validates_above_084(telco_cv):
    _, folds = telco_cv
    assert np.mean(folds) >= 0.84, folds


def test_telco_tuned_model_beats_logistic_regression(telco_snapshot, telco_cv):
    """Against a logistic-regression baseline on the same folds."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from ml.data import fold_of

    data, folds = telco_cv
    fs = telco_snapshot.feature_set
    categorical = [i for i, f in enumerate(fs.features) if f.dtype == "category"]
    numeric = [i for i in range(len(fs)) if i not in categorical]
    fold = fold_of(data.customer_ids, 5, 42)
    baseline = []
    for k in range(5):
        lr = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), categorical),
                                                   (StandardScaler(), numeric)), LogisticRegression(max_iter=2000))
        lr.fit(data.X[fold != k], data.y[fold != k])
        baseline.append(roc_auc_score(data.y[fold == k], lr.predict_proba(data.X[fold == k])[:, 1]))
    assert np.mean(folds) >= np.mean(baseline), (folds, baseline)
