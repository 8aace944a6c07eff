"""The ONNX-compiled trees give XGBoost's numbers: probabilities to 1e-6, per-feature
contributions equal to XGBoost's own per-path contributions (``approx_contribs``)."""
from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from ml.uplift.model import UpliftModel
from serve_app.compiled import TOLERANCE, CompiledModel, CompiledUplift, CompileError, probe_rows, to_onnx
from serve_app.model import XGBoostEngine

N_FEATURES = 59


def data(n: int = 10_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    signal = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1] * X[:, 2]) - np.isnan(X[:, 3])
    return X, (signal + rng.normal(size=n) > 0.5).astype(int)


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    """200 trees of depth 5 on 59 features with missing values, as the service's models."""
    X, y = data()
    return xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.05, "nthread": 2, "seed": 0},
                     xgb.DMatrix(X, label=y), 200)


def test_probabilities_equal_xgboost(booster):
    model = CompiledModel.from_booster(booster, N_FEATURES)
    X = np.vstack([data(5_000, seed=1)[0], probe_rows(booster, N_FEATURES, 5_000, seed=2)])
    proba, _ = model.predict(X)
    assert np.max(np.abs(proba - booster.inplace_predict(X))) <= TOLERANCE


def test_contributions_equal_xgboost_per_path_contributions(booster):
    model = CompiledModel.from_booster(booster, N_FEATURES)
    X = data(2_000, seed=3)[0]
    expected = booster.predict(xgb.DMatrix(X), pred_contribs=True, approx_contribs=True)
    _, contribs = model.predict(X)
    np.testing.assert_allclose(contribs, expected[:, :-1], atol=1e-5)
    np.testing.assert_allclose(expected[:, -1], model.bias, atol=1e-5)
    margin = booster.predict(xgb.DMatrix(X), output_margin=True)
    np.testing.assert_allclose(contribs.sum(axis=1) + model.bias, margin, atol=1e-4)


def test_single_rows_and_the_booster_engine_agree(booster):
    compiled, plain = CompiledModel.from_booster(booster, N_FEATURES), XGBoostEngine(booster)
    for row in data(20, seed=4)[0]:
        (p1, c1), (p2, c2) = compiled.predict(row[None, :]), plain.predict(row[None, :])
        assert abs(p1[0] - p2[0]) <= TOLERANCE
        np.testing.assert_allclose(c1, c2, atol=1e-5)


def test_early_stopped_booster_predicts_as_xgboost_does():
    X, y = data(4_000, seed=5)
    dtrain, dvalid = xgb.DMatrix(X[:3000], label=y[:3000]), xgb.DMatrix(X[3000:], label=y[3000:])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 2}, dtrain, 200,
                        evals=[(dvalid, "valid")], early_stopping_rounds=5, verbose_eval=False)
    assert booster.best_iteration < 199
    proba, _ = CompiledModel.from_booster(booster, N_FEATURES).predict(X)
    assert np.max(np.abs(proba - booster.inplace_predict(X))) <= TOLERANCE


def test_a_non_binary_objective_is_refused():
    X, y = data(2_000, seed=6)
    regressor = xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(X, label=y), 5)
    with pytest.raises(CompileError, match="objective"):
        CompiledModel.from_booster(regressor, N_FEATURES)


def test_a_compiled_model_of_other_trees_fails_verification(booster):
    X, y = data(2_000, seed=6)
    other = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 1}, xgb.DMatrix(X, label=y), 20)
    wrong = CompiledModel(*to_onnx(other, N_FEATURES))
    with pytest.raises(CompileError, match="differs"):
        wrong.verify(booster, N_FEATURES)


@pytest.fixture(scope="module")
def uplift_model(booster) -> UpliftModel:
    """The booster as the baseline, and two interventions trained from it with a prior, as
    ``churn uplift`` trains them."""
    X, y = data(4_000, seed=1)
    start = booster.predict(xgb.DMatrix(X), output_margin=True)
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.1, "nthread": 2, "seed": 0}
    arms = {name: xgb.train(params, xgb.DMatrix(X, label=y, base_margin=start + np.log1p(-prior)), 30)
            for name, prior in (("call", 0.12), ("discount", 0.2))}
    return UpliftModel([f"f{i}" for i in range(N_FEATURES)], booster, arms, {"call": 0.12, "discount": 0.2})


def test_the_compiled_uplift_model_gives_the_boosters_churn_and_drops(uplift_model):
    X, _ = data(2_000, seed=2)
    compiled = CompiledUplift.from_model(uplift_model)
    (p0, drops), (q0, expected) = compiled.predict(X), uplift_model.predict(X)
    assert np.max(np.abs(p0 - q0)) <= TOLERANCE and np.max(np.abs(drops - expected)) <= TOLERANCE
    assert compiled.interventions == ["call", "discount"]


def test_a_compiled_uplift_model_with_another_prior_fails_verification(uplift_model):
    compiled = CompiledUplift(uplift_model)
    compiled.shift = compiled.shift + 0.5
    with pytest.raises(CompileError, match="differs"):
        compiled.verify()
