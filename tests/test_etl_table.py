"""Bring-your-own-table ETL on the real Telco dataset and on defective tables (Spark via RayDP)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from features import table_etl
from features.raw_etl import EtlError
from features.snapshot import open_snapshot

pytestmark = pytest.mark.slow


def test_telco_snapshot(spark, settings, telco_csv):
    result = table_etl.run(spark, settings, telco_csv, "customerID", "Churn", {}, {"TotalCharges": 0.0})
    m = result.snapshot.manifest
    assert m["sources"]["telco_customer_churn.csv"]["rows_in"] == 7043
    assert m["rows"] == 7043
    assert m["missing_values"] == {"TotalCharges": 11}, "the 11 blank TotalCharges cells are counted"
    assert m["defaults_applied"] == {"TotalCharges": 11}
    assert m["label_rate"] == pytest.approx(1869 / 7043)
    fs = result.snapshot.feature_set
    assert len(fs) == 19 and "customerID" not in fs.names and "Churn" not in fs.names
    assert fs["tenure"].dtype == "int" and fs["TotalCharges"].dtype == "float"
    assert fs["Contract"].categories == ("Month-to-month", "One year", "Two year")
    df = result.snapshot.to_pandas()
    assert df["customer_id"].is_unique and len(df) == 7043
    blank = df[df["tenure"] == 0]
    assert len(blank) == 11 and (blank["TotalCharges"] == 0).all(), "stated rule: blank -> --default 0"
    assert open_snapshot(settings, "latest").id == result.snapshot.id


def test_blank_cells_stay_missing_without_default(spark, settings, telco_csv):
    result = table_etl.run(spark, settings, telco_csv, "customerID", "Churn", {"gender": "drop"}, {})
    df = result.snapshot.to_pandas()
    assert int(np.isnan(df["TotalCharges"]).sum()) == 11
    assert "gender" not in result.snapshot.feature_set.names


def test_defective_table_rows_are_quarantined_and_reconcile(spark, settings, tmp_path):
    table = tmp_path / "customers.csv"
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
    result = table_etl.run(spark, settings, str(table), "id", "churned", {"monthly": "float"}, {})
    s = result.snapshot.manifest["sources"]["customers.csv"]
    assert s["rows_in"] == 8
    assert s["duplicates_removed"] == 1
    assert s["quarantined"] == {"duplicate_key:id": 1, "malformed:monthly": 1, "null:id": 1,
                                "unknown_category:churned": 1}
    assert s["rows_used"] == 3
    assert s["rows_in"] == s["rows_used"] + sum(s["quarantined"].values()) + s["duplicates_removed"]
    quarantine = pq.read_table(result.snapshot.uri + "/quarantine").to_pandas()
    assert sorted(quarantine["rule"]) == sorted(s["quarantined"])
    assert result.snapshot.manifest["missing_values"] == {"monthly": 1}


def test_unknown_column_is_named(spark, settings, telco_csv):
    with pytest.raises(EtlError, match="customer_key"):
        table_etl.run(spark, settings, telco_csv, "customer_key", "Churn", {}, {})


def test_telco_tuned_model_cross_validates_above_084_and_beats_logistic_regression(spark, settings, telco_csv):
    """5-fold CV on the Telco snapshot with the configuration `churn tune` found (committed in
    tuning/configs/telco.json), against a logistic-regression baseline on the same folds."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from ml.data import Labelled, fold_of
    from ml.training.cross_validation import cross_validated_auc

    snapshot = table_etl.run(spark, settings, telco_csv, "customerID", "Churn", {}, {"TotalCharges": 0.0}).snapshot
    tuned = json.loads((Path(__file__).parents[1] / "tuning" / "configs" / "telco.json").read_text())
    data = Labelled.from_frame(snapshot.to_pandas(), snapshot.feature_set)
    folds = cross_validated_auc(data.X, data.y, data.customer_ids, tuned["params"], tuned["num_boost_round"], 5, 42)
    assert np.mean(folds) >= 0.84, folds

    fs = snapshot.feature_set
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
