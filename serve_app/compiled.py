"""The booster's trees compiled for ONNX Runtime, with per-feature contributions in the same pass.

Why: one request needs a probability and its top reasons. XGBoost's per-call overhead and its
per-row TreeSHAP dominate a one-row request; ONNX Runtime evaluates the same trees far faster
(tests/ check the numbers agree; load_tests/ measure the speed). Contributions are the per-path
attributions XGBoost itself computes with ``approx_contribs=True`` (Saabas; what batch scoring
uses by default too): walking a tree, each split moves the expected value of the subtree, and the
move is credited to the split's feature. Every leaf therefore carries a fixed vector (its value +
the credits along its path), so the model is one multi-target ``TreeEnsembleRegressor``: target 0
is the margin, target 1 + j feature j's contribution.

A compiled model is checked against the booster before it is used (``verify``): probabilities
must agree to 1e-6 on rows that reach every branch, missing values included.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import xgboost as xgb
from onnx import TensorProto, helper

from ml.uplift.model import UpliftModel

TOLERANCE = 1e-6
_LOGISTIC = ("binary:logistic", "reg:logistic")


class CompileError(RuntimeError):
    """The booster cannot be compiled exactly (objective, categorical splits, mismatch)."""


@dataclass(frozen=True)
class _Tree:
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    cover: np.ndarray
    value: np.ndarray  # leaf values (meaningful at leaves only)

    def is_leaf(self, node: int) -> bool:
        return self.left[node] == -1

    def mean_values(self) -> np.ndarray:
        """Cover-weighted mean of the leaves below each node (XGBoost's ``FillNodeMeanValues``)."""
        means = np.zeros(len(self.left), dtype=np.float64)
        for node in reversed(self._preorder()):
            if self.is_leaf(node):
                means[node] = self.value[node]
            else:
                left, right = self.left[node], self.right[node]
                means[node] = (means[left] * self.cover[left] + means[right] * self.cover[right]) / self.cover[node]
        return means.astype(np.float32)

    def _preorder(self) -> list[int]:
        order, stack = [], [0]
        while stack:
            node = stack.pop()
            order.append(node)
            if not self.is_leaf(node):
                stack += [self.right[node], self.left[node]]
        return order

    def leaf_paths(self) -> list[tuple[int, dict[int, float]]]:
        """Each leaf with the contribution credited to each feature on its path."""
        means = self.mean_values()
        paths: list[tuple[int, dict[int, float]]] = []
        stack: list[tuple[int, dict[int, float]]] = [(0, {})]
        while stack:
            node, credit = stack.pop()
            if self.is_leaf(node):
                paths.append((node, credit))
                continue
            feature = int(self.feature[node])
            for child in (self.left[node], self.right[node]):
                moved = dict(credit)
                moved[feature] = moved.get(feature, 0.0) + float(means[child] - means[node])
                stack.append((int(child), moved))
        return paths


def _parse(booster: xgb.Booster) -> tuple[list[_Tree], float]:
    """The trees and the base margin of a logistic booster."""
    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    objective = learner["objective"]["name"]
    if objective not in _LOGISTIC:
        raise CompileError(f"objective {objective} is not compiled (only {', '.join(_LOGISTIC)})")
    base_score = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))
    trees = []
    for t in learner["gradient_booster"]["model"]["trees"]:  # all of them, as inplace_predict uses
        if any(t["split_type"]):
            raise CompileError("categorical splits are not compiled")
        trees.append(_Tree(
            left=np.array(t["left_children"]), right=np.array(t["right_children"]),
            feature=np.array(t["split_indices"]), threshold=np.array(t["split_conditions"], dtype=np.float32),
            default_left=np.array(t["default_left"], dtype=bool), cover=np.array(t["sum_hessian"], dtype=np.float64),
            value=np.array(t["split_conditions"], dtype=np.float32),
        ))
    return trees, float(np.log(base_score / (1 - base_score)))


def _ensemble_node(trees: list[_Tree], leaf_weights: Callable[[int, _Tree], list[tuple[int, int, float]]],
                   base_values: list[float]) -> onnx.NodeProto:
    """One ``TreeEnsembleRegressor`` of ``trees`` whose leaves add ``leaf_weights(tree_id, tree)``
    ((leaf node, target, weight) triples) to the targets, which start from ``base_values``."""
    nodes: dict[str, list] = {k: [] for k in (
        "treeids", "nodeids", "featureids", "values", "modes", "truenodeids", "falsenodeids", "missing")}
    targets: dict[str, list] = {"treeids": [], "nodeids": [], "ids": [], "weights": []}
    for tree_id, tree in enumerate(trees):
        for node in range(len(tree.left)):
            leaf = tree.is_leaf(node)
            nodes["treeids"].append(tree_id)
            nodes["nodeids"].append(node)
            nodes["featureids"].append(0 if leaf else int(tree.feature[node]))
            nodes["values"].append(0.0 if leaf else float(tree.threshold[node]))
            nodes["modes"].append("LEAF" if leaf else "BRANCH_LT")  # x < threshold goes left, as in XGBoost
            nodes["truenodeids"].append(0 if leaf else int(tree.left[node]))
            nodes["falsenodeids"].append(0 if leaf else int(tree.right[node]))
            nodes["missing"].append(int(not leaf and tree.default_left[node]))
        for leaf_node, target, weight in leaf_weights(tree_id, tree):
            targets["treeids"].append(tree_id)
            targets["nodeids"].append(leaf_node)
            targets["ids"].append(target)
            targets["weights"].append(weight)
    return helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=len(base_values),
        aggregate_function="SUM", post_transform="NONE", base_values=base_values,
        nodes_treeids=nodes["treeids"], nodes_nodeids=nodes["nodeids"], nodes_featureids=nodes["featureids"],
        nodes_values=nodes["values"], nodes_modes=nodes["modes"], nodes_truenodeids=nodes["truenodeids"],
        nodes_falsenodeids=nodes["falsenodeids"], nodes_missing_value_tracks_true=nodes["missing"],
        target_treeids=targets["treeids"], target_nodeids=targets["nodeids"], target_ids=targets["ids"],
        target_weights=targets["weights"],
    )


def _contributions(tree_id: int, tree: _Tree) -> list[tuple[int, int, float]]:
    """Target 0: the leaf value (margin); target 1 + f: the credit of feature f on the leaf's path."""
    return [(leaf, target, weight) for leaf, credit in tree.leaf_paths()
            for target, weight in [(0, float(tree.value[leaf])), *((1 + f, c) for f, c in sorted(credit.items()))]]


def _session(node: onnx.NodeProto, n_features: int, n_targets: int) -> bytes:
    graph = helper.make_graph(
        [node], "churn",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n_targets])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    return model.SerializeToString()


def _runtime(onnx_model: bytes) -> ort.InferenceSession:
    """One thread: a replica is one Python process and requests are tiny."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def to_onnx(booster: xgb.Booster, n_features: int) -> tuple[bytes, float]:
    """The serialized ONNX model and the bias (expected margin) the contributions start from."""
    trees, base_margin = _parse(booster)
    node = _ensemble_node(trees, _contributions, [base_margin] + [0.0] * n_features)
    bias = base_margin + sum(float(t.mean_values()[0]) for t in trees)
    return _session(node, n_features, 1 + n_features), bias


class CompiledModel:
    """Probabilities and contributions of a logistic booster through ONNX Runtime."""

    def __init__(self, onnx_model: bytes, bias: float) -> None:
        self.session = _runtime(onnx_model)
        self.bias = bias

    @classmethod
    def from_booster(cls, booster: xgb.Booster, n_features: int) -> CompiledModel:
        model = cls(*to_onnx(booster, n_features))
        model.verify(booster, n_features)
        return model

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, per-feature contributions in log-odds) for float32 rows."""
        out = self.session.run(None, {"X": X})[0]
        proba = 1.0 / (1.0 + np.exp(-out[:, 0].astype(np.float64)))
        return proba, out[:, 1:]

    def verify(self, booster: xgb.Booster, n_features: int, rows: int = 512, seed: int = 0) -> None:
        """Raise CompileError unless probabilities match the booster's to TOLERANCE on rows drawn
        around every threshold (both sides of each split, and missing)."""
        X = probe_rows(booster, n_features, rows, seed)
        expected = booster.inplace_predict(X)
        got, _ = self.predict(X)
        worst = float(np.max(np.abs(got - expected)))
        if worst > TOLERANCE:
            raise CompileError(f"compiled model differs from the booster by {worst:.2e} (> {TOLERANCE})")


def probe_rows(booster: xgb.Booster, n_features: int, rows: int, seed: int = 0) -> np.ndarray:
    """Rows whose values sit just below/at/above the booster's thresholds, or are missing."""
    rng = np.random.default_rng(seed)
    trees, _ = _parse(booster)
    cuts: list[list[float]] = [[] for _ in range(n_features)]
    for tree in trees:
        for node in np.flatnonzero(tree.left != -1):
            cuts[int(tree.feature[node])].append(float(tree.threshold[node]))
    X = np.empty((rows, n_features), dtype=np.float32)
    for j, values in enumerate(cuts):
        pool = np.array(values or [0.0], dtype=np.float32)
        picked = rng.choice(pool, rows)
        nudged = np.where(rng.random(rows) < 0.5, np.nextafter(picked, np.float32(-np.inf)), picked)
        X[:, j] = np.where(rng.random(rows) < 0.1, np.nan, nudged)
    return X


class CompiledUplift:
    """An uplift model's boosters as one ONNX ensemble: target 0 is the baseline margin, target
    1 + j the sum of intervention j's trees (its booster's output past the base margin it was
    given), so one call gives what ``UpliftModel.predict`` gets from one booster call each."""

    def __init__(self, model: UpliftModel) -> None:
        groups = [_parse(model.baseline), *(_parse(b) for b in model.arms.values())]
        trees = [tree for group, _ in groups for tree in group]
        target = [k for k, (group, _) in enumerate(groups) for _ in group]
        node = _ensemble_node(trees, lambda i, tree: [(leaf, target[i], float(tree.value[leaf]))
                                                      for leaf in np.flatnonzero(tree.left == -1).tolist()],
                              [groups[0][1]] + [0.0] * len(model.arms))
        self.session = _runtime(_session(node, len(model.feature_names), len(groups)))
        self.model = model
        self.shift = np.array([np.log1p(-model.priors[name]) for name in model.arms])

    @property
    def interventions(self) -> list[str]:
        return self.model.interventions

    @classmethod
    def from_model(cls, model: UpliftModel) -> CompiledUplift:
        compiled = cls(model)
        compiled.verify()
        return compiled

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same (p_churn without contact, drop per intervention) as ``UpliftModel.predict``."""
        out = self.session.run(None, {"X": X})[0].astype(np.float64)
        margin = out[:, :1]
        p0 = 1.0 / (1.0 + np.exp(-margin))
        p = 1.0 / (1.0 + np.exp(-(margin + self.shift[None, :] + out[:, 1:])))
        return p0[:, 0], p0 - p

    def verify(self, rows: int = 512, seed: int = 0) -> None:
        """Raise CompileError unless both outputs match the model's to TOLERANCE on probe rows."""
        n = len(self.model.feature_names)
        X = np.vstack([probe_rows(b, n, rows, seed) for b in (self.model.baseline, *self.model.arms.values())])
        worst = max(float(np.max(np.abs(a - b))) for a, b in zip(self.predict(X), self.model.predict(X), strict=True))
        if worst > TOLERANCE:
            raise CompileError(f"compiled uplift model differs from its boosters by {worst:.2e} (> {TOLERANCE})")
