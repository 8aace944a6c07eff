"""Scoring customers in Ray Data: an actor pool that loads the model once per actor and turns
large Arrow batches into probability + top reasons.

The pool is sized against the cluster so it can never starve the read and write tasks: on a
2-CPU node, two actors reserving one CPU each leave no CPU for the reads and the job hangs.
The customer id column passes through as Arrow (never converted to Python objects); the
features become one float32 matrix per batch, the only copy.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xgboost as xgb

from core.schema import CUSTOMER_ID
from core.settings import ScoringSettings
from features.feature_set import FeatureSet, feature_matrix
from ml.evaluation.explain import contributions, top_raising
from ml.scoring.score_table import PROBABILITY, REASONS

if TYPE_CHECKING:
    from ray.data import Dataset

log = logging.getLogger(__name__)

REASON_SEPARATOR = "; "


class SchemaMismatch(ValueError):
    pass


@dataclass(frozen=True)
class PoolPlan:
    """Resources of one scoring run: ``actors * cpus_per_actor + 2 * io_cpus <= cluster CPUs``
    (room for one read and one write task next to the pool)."""

    actors: int
    cpus_per_actor: float
    io_cpus: float
    """Ray CPUs of each read and write task."""
    threads: int


def plan_pool(cluster_cpus: float, settings: ScoringSettings) -> PoolPlan:
    """Actors and CPUs for a cluster, leaving room for a read and a write task of ``io_cpus``
    each (together at most half the cluster). A configuration that would not fit is shrunk, with
    a warning."""
    io = min(settings.io_cpus, cluster_cpus / 4)
    pool = cluster_cpus - 2 * io
    actors = settings.actors or max(1, int(cluster_cpus))
    per_actor = settings.cpus_per_actor or pool / actors
    if actors * per_actor > pool + 1e-9:
        fitting = max(1, math.floor(pool / per_actor + 1e-9))
        shrunk = PoolPlan(fitting, min(per_actor, pool / fitting), io, settings.threads_per_actor)
        log.warning("scoring pool does not fit next to the read/write tasks; shrunk",
                    extra={"cluster_cpus": cluster_cpus, "asked_actors": actors, "asked_cpus_per_actor": per_actor,
                           "actors": shrunk.actors, "cpus_per_actor": shrunk.cpus_per_actor, "io_cpus": io})
        return shrunk
    return PoolPlan(actors, per_actor, io, settings.threads_per_actor)


def check_compatible(model_features: FeatureSet, snapshot_features: FeatureSet) -> None:
    """Every model feature must be in the snapshot with the same type and category codes."""
    have = {f.name: f for f in snapshot_features.features}
    bad = [f.name for f in model_features.features
           if f.name not in have or (have[f.name].dtype, have[f.name].categories) != (f.dtype, f.categories)]
    if bad:
        raise SchemaMismatch(f"the snapshot lacks or encodes differently the model features {bad}")


def reason_text(contribs: np.ndarray, names: list[str], k: int) -> pa.Array:
    """The up to ``k`` features raising each row's risk the most, largest first, joined by
    ``REASON_SEPARATOR``."""
    top, _, raising = top_raising(contribs, k)
    offsets = np.concatenate([[0], np.cumsum(raising.sum(axis=1))]).astype(np.int32)
    reasons = pc.take(pa.array(names, pa.string()), pa.array(top[raising]))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), reasons), REASON_SEPARATOR)


class Scorer:
    """The callable each pool actor holds: the booster is deserialised once per actor."""

    def __init__(self, model: bytes, feature_names: list[str], reasons: int, exact_reasons: bool, threads: int):
        self.booster = xgb.Booster(model_file=bytearray(model))
        self.booster.set_param({"nthread": threads})
        self.names, self.reasons, self.exact, self.threads = feature_names, reasons, exact_reasons, threads

    def __call__(self, batch: pa.Table) -> pa.Table:
        X = feature_matrix(batch, self.names)
        proba = self.booster.inplace_predict(X).astype(np.float32)
        return pa.table({CUSTOMER_ID: batch.column(CUSTOMER_ID), PROBABILITY: proba,
                         REASONS: reason_text(self._contributions(X), self.names, self.reasons)})

    def _contributions(self, X: np.ndarray) -> np.ndarray:
        if self.exact:
            return contributions(self.booster, X, self.names)
        matrix = xgb.DMatrix(X, feature_names=self.names, nthread=self.threads)
        return self.booster.predict(matrix, pred_contribs=True, approx_contribs=True)[:, :-1]


def score(ds: Dataset, booster: xgb.Booster, features: FeatureSet, plan: PoolPlan,
          settings: ScoringSettings, reasons: int) -> Dataset:
    """customer_id, probability and top_reasons of every row of ``ds`` (lazy).

    A lost actor (its node gone) fails the run, which then publishes nothing: restarted, it would
    wait for CPUs that only the lost node had, while the surviving actors hold the rest (a hang)."""
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        Scorer,
        batch_format="pyarrow",
        batch_size=settings.batch_size,
        compute=ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.cpus_per_actor,
        max_restarts=0,
        fn_constructor_kwargs={"model": bytes(booster.save_raw("ubj")), "feature_names": features.names,
                               "reasons": reasons, "exact_reasons": settings.exact_reasons,
                               "threads": plan.threads},
        udf_modifying_row_count=False,
    )
