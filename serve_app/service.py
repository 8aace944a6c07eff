"""What a prediction does, independent of how it is served (a Serve replica or a bare uvicorn
process): read the customers' vectors in one round trip, apply the request's overrides, score all
rows in one call, and build the answers."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.settings import Settings
from features.feature_set import SchemaMismatch
from features.online.interface import FeatureRows, OnlineReader, OnlineStoreError, StoreUnavailable
from features.online.redis_reader import RedisOnlineReader
from serve_app.metrics import FLUSH_S, ServiceMetrics
from serve_app.model import ModelWatcher, ServingModel, load_model
from serve_app.schemas import PredictRequest

log = logging.getLogger(__name__)


class CustomerNotFound(LookupError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"unknown customer '{customer_id}': not in the online feature store")
        self.customer_id = customer_id


@dataclass(frozen=True)
class ScoringRequest:
    """A validated single prediction request: overrides already encoded as model values."""

    customer_id: str
    overrides: dict[str, float]


Outcome = dict[str, Any] | CustomerNotFound


class PredictionService:
    def __init__(self, settings: Settings, reader: OnlineReader, model: ServingModel,
                 metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.reader = reader
        self.metrics = metrics
        self.watcher = ModelWatcher(settings, model, self._compatible,
                                    on_swap=lambda m: metrics.model_loaded(m.version))
        self._flusher: asyncio.Task | None = None
        metrics.model_loaded(model.version)

    @classmethod
    async def start(cls, settings: Settings, metrics: ServiceMetrics) -> PredictionService:
        """Load the alias's model and start following the alias."""
        model = await asyncio.to_thread(load_model, settings)
        service = cls(settings, RedisOnlineReader(settings), model, metrics)
        service.watcher.start()
        service._flusher = asyncio.get_running_loop().create_task(service._flush_metrics())
        return service

    @property
    def model(self) -> ServingModel:
        return self.watcher.current

    def parse(self, request: PredictRequest) -> ScoringRequest:
        """Validate the overrides against the current model's features (422 naming the field)."""
        return ScoringRequest(request.customer_id, self.model.overrides.encode(request.overrides))

    async def score(self, requests: Sequence[ScoringRequest]) -> list[Outcome]:
        """One answer per request, from one feature read and one model call."""
        model = self.model
        rows = await self._features(model, [r.customer_id for r in requests])
        X = rows.values
        for i, request in enumerate(requests):
            for name, value in request.overrides.items():
                X[i, model.index[name]] = value
        answers = self._answers(model, rows, X, [r.customer_id for r in requests])
        return [answers.get(i) or CustomerNotFound(r.customer_id) for i, r in enumerate(requests)]

    async def score_one(self, request: ScoringRequest) -> Outcome:
        """One request on its own (no batching): its own feature read and model call."""
        return (await self.score([request]))[0]

    async def score_ids(self, ids: Sequence[str]) -> dict[str, Any]:
        """The batch endpoint: every known id scored, unknown ones listed."""
        model = self.model
        rows = await self._features(model, ids)
        answers = self._answers(model, rows, rows.values, ids)
        return {"predictions": [answers[i] for i in sorted(answers)],
                "missing": [ids[i] for i in np.flatnonzero(~rows.found).tolist()],
                "model_version": model.version, "feature_version": rows.version.id}

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Model loaded, Redis reachable, live features laid out as the model expects."""
        model = self.model
        checks: dict[str, Any] = {"model": {"ok": True, "version": model.version, "engine": model.engine_name,
                                            "schema_hash": model.schema_hash}}
        try:
            started = time.perf_counter()
            await self.reader.ping()
            checks["redis"] = {"ok": True, "ping_ms": round((time.perf_counter() - started) * 1000, 2)}
            live = await self.reader.live(refresh=True)
            checks["features"] = {"ok": live.schema_hash == model.schema_hash, "version": live.id,
                                  "schema_hash": live.schema_hash, "rows": live.rows}
        except OnlineStoreError as exc:
            checks.setdefault("redis", {"ok": not isinstance(exc, StoreUnavailable), "error": str(exc)})
            checks["features"] = {"ok": False, "error": str(exc)}
        return all(c["ok"] for c in checks.values()), checks

    async def close(self) -> None:
        await self.watcher.stop()
        if self._flusher:
            self._flusher.cancel()
        self.metrics.flush()
        await self.reader.close()

    # ---------------------------------------------------------------- helpers
    async def _flush_metrics(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self.metrics.flush()

    async def _features(self, model: ServingModel, ids: Sequence[str]) -> FeatureRows:
        try:
            rows = await self.reader.get_many(ids)
        except StoreUnavailable:
            self.metrics.redis_error()
            raise
        if rows.version.schema_hash != model.schema_hash:
            raise SchemaMismatch(f"online features {rows.version.id} (layout {rows.version.schema_hash}) do not "
                                 f"match model {model.version} (layout {model.schema_hash})")
        self.metrics.missed(int((~rows.found).sum()))
        return rows

    def _answers(self, model: ServingModel, rows: FeatureRows, X: np.ndarray,
                 ids: Sequence[str]) -> dict[int, dict[str, Any]]:
        """Prediction bodies of the found rows, by request position."""
        found = np.flatnonzero(rows.found)
        if not len(found):
            return {}
        scores = model.score(X[found])
        self.metrics.scored(scores.segments)
        return {
            int(i): {"customer_id": ids[i], "churn_probability": float(p), "risk_segment": str(s),
                     "top_reasons": reasons, "next_best_action": action, "model_version": model.version,
                     "feature_version": rows.version.id}
            for i, p, s, reasons, action in zip(found.tolist(), scores.proba, scores.segments, scores.reasons,
                                                scores.actions, strict=True)
        }

    async def _compatible(self, model: ServingModel) -> bool:
        """A new model is swapped in only when the live online features have its layout."""
        try:
            live = await self.reader.live(refresh=True)
        except OnlineStoreError as exc:
            log.warning("cannot check the new model against the online features", extra={"error": str(exc)})
            return False
        return live.schema_hash == model.schema_hash


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1e3, 3)
