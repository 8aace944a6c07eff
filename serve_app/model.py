"""The model a replica serves: loaded from the registry alias, scored in one vectorised call, and
swapped for a new version when the alias moves, without disturbing requests in flight (each
request keeps the model object it started with; the swap is one attribute assignment)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import xgboost as xgb
from mlflow.tracking import MlflowClient

from core.settings import Settings
from features.feature_set import FeatureSet
from ml import registry
from ml.evaluation.explain import top_reasons
from ml.scoring import segments
from serve_app.compiled import CompiledModel, CompileError
from serve_app.next_action import NextActions
from serve_app.schemas import OverrideSchema

log = logging.getLogger(__name__)


class ScoringEngine(Protocol):
    """What computes a model's numbers: the ONNX-compiled trees or the booster itself."""

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, per-feature contributions) of float32 rows."""


class XGBoostEngine:
    """The booster itself: ``inplace_predict`` and XGBoost's per-path contributions (the same
    numbers as ``CompiledModel``, slower per request)."""

    def __init__(self, booster: xgb.Booster) -> None:
        booster.set_param({"nthread": 1})
        self.booster = booster

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proba = self.booster.inplace_predict(X)
        contribs = self.booster.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True, approx_contribs=True)
        return proba.astype(np.float64), contribs[:, :-1]


@dataclass(frozen=True)
class Scores:
    proba: np.ndarray
    segments: np.ndarray
    reasons: list[list[dict[str, float]]]
    actions: list[dict[str, Any]]


@dataclass(frozen=True)
class ServingModel:
    """One registered model version, ready to score rows laid out as its FeatureSet."""

    version: str
    features: FeatureSet
    engine_name: str
    engine: ScoringEngine
    bounds: list[tuple[str, float]]
    top_k: int
    actions: NextActions
    index: dict[str, int] = field(init=False)
    overrides: OverrideSchema = field(init=False)
    schema_hash: str = field(init=False)  # computed once: the hot path compares it on every request

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {name: i for i, name in enumerate(self.features.names)})
        object.__setattr__(self, "overrides", OverrideSchema(self.features))
        object.__setattr__(self, "schema_hash", self.features.schema_hash)

    def score(self, X: np.ndarray) -> Scores:
        proba, contribs = self.engine.predict(X)
        reasons = top_reasons(contribs, self.features.names, self.top_k)
        return Scores(proba, segments.assign(proba, self.bounds), reasons, self.actions.choose(X, proba))


def load_model(settings: Settings, ref: str | None = None) -> ServingModel:
    """The registered model behind ``ref`` (the serving alias by default), compiled for ONNX
    Runtime unless settings ask for the booster or the compiled form fails its check, with the
    uplift champion of the moment for its next best actions."""
    loaded = registry.load(settings, ref or settings.serve.model_alias)
    engine: ScoringEngine
    engine_name = settings.serve.engine
    if engine_name == "onnx":
        try:
            engine = CompiledModel.from_booster(loaded.booster, len(loaded.features))
        except CompileError as exc:
            log.warning("serving the booster as is: the compiled form failed", extra={"error": str(exc)})
            engine_name, engine = "xgboost", XGBoostEngine(loaded.booster)
    else:
        engine = XGBoostEngine(loaded.booster)
    if settings.segments.by_quantile:
        raise ValueError("quantile risk tiers need a scored population: online serving needs fixed bounds")
    bounds = segments.tier_bounds(settings.segments)
    actions = NextActions.load(settings, loaded.features)
    log.info("model loaded", extra={"version": loaded.version, "engine": engine_name,
                                    "schema_hash": loaded.schema_hash, "next_best_action": actions.basis})
    return ServingModel(str(loaded.version), loaded.features, engine_name, engine, bounds,
                        settings.segments.top_reasons, actions)


class ModelWatcher:
    """Holds the current model and follows the registry alias: every ``poll_s`` it asks where
    the alias points and, when it moved, loads the new version off the event loop and swaps it
    in if ``compatible(model)`` agrees (e.g. it reads the live online features' layout)."""

    def __init__(self, settings: Settings, model: ServingModel,
                 compatible: Callable[[ServingModel], Awaitable[bool]],
                 on_swap: Callable[[ServingModel], None] = lambda m: None) -> None:
        self.settings = settings
        self.current = model
        self.compatible = compatible
        self.on_swap = on_swap
        self._pending: ServingModel | None = None
        self._task: asyncio.Task | None = None
        self._client = MlflowClient(tracking_uri=settings.tracking_uri)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.serve.model_poll_s)
            try:
                await self.check()
            except Exception:  # the registry is down or the new version is broken: keep serving
                log.exception("model refresh failed; serving version %s", self.current.version)

    async def check(self) -> bool:
        """Swap to the alias's version if it moved and is compatible; True when swapped."""
        version = await asyncio.to_thread(self._alias_version)
        if version is None or version == self.current.version:
            return False
        if self._pending is None or self._pending.version != version:
            self._pending = await asyncio.to_thread(load_model, self.settings, version)
        if not await self.compatible(self._pending):
            log.warning("new model version waits: its features do not match the online store",
                        extra={"version": version, "schema_hash": self._pending.schema_hash})
            return False
        previous, self.current, self._pending = self.current, self._pending, None
        self.on_swap(self.current)
        log.info("model swapped", extra={"from": previous.version, "to": self.current.version})
        return True

    def _alias_version(self) -> str | None:
        mv = registry.version_by_alias(self._client, self.settings, self.settings.serve.model_alias)
        return str(mv.version) if mv else None  # MLflow gives an int here, a str elsewhere
