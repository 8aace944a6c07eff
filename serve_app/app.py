"""The Ray Serve application: one ingress deployment, ``Predictor``, whose replicas each hold the
model and an async Redis pool and answer HTTP themselves.

    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 RAY_SERVE_ENABLE_HA_PROXY=1 serve run serve_app/config.yaml
    churn serve up          # the same, on a Ray head of its own, detached

With those two flags (Ray >= 2.55) each replica serves HTTP on its own port (direct ingress) and
HAProxy, managed by Serve on every node, is the one stable route on ``http_options.port``: it
balances over the replicas and follows them as they come and go. Without the flags the app runs
unchanged behind Serve's Python proxy.

Scoring is one deployment on purpose: every hop between deployments costs a serialisation and a
network round trip, more than the predict itself. With ``max_batch_size`` > 1 (the default),
concurrent requests in a replica share one feature read and one model call through
``@serve.batch``; with 1 each request skips the batch queue (lower latency at light load, less
throughput under it: load_tests/bench_serving.py measures both).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from fastapi import FastAPI
from ray import serve

from core import logs
from core.settings import get_settings
from serve_app.api import create_api
from serve_app.metrics import RayInstruments, ServiceMetrics
from serve_app.service import Outcome, PredictionService, ScoringRequest

if TYPE_CHECKING:
    from ray.serve import Deployment


class _Batched(Protocol):
    """What ``@serve.batch`` adds to a method at runtime (its typing leaves it out)."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...


@serve.deployment(name="Predictor")
@serve.ingress()
class Predictor:
    async def __init__(self) -> None:  # type: ignore[misc]  # Serve awaits an async constructor
        logs.configure()
        settings = get_settings()
        self.service = await PredictionService.start(settings, ServiceMetrics(RayInstruments()))
        self.batching = settings.serve.max_batch_size > 1
        batched = cast(_Batched, self.score_batched)
        batched.set_max_batch_size(settings.serve.max_batch_size)
        batched.set_batch_wait_timeout_s(settings.serve.batch_wait_timeout_s)

    def __serve_build_asgi_app__(self) -> FastAPI:
        score_one = self.score_batched if self.batching else self.service.score_one
        return create_api(self.service, score_one)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def score_batched(self, requests: list[ScoringRequest]) -> list[Outcome]:
        return await self.service.score(requests)

    async def __del__(self) -> None:
        if hasattr(self, "service"):  # absent when __init__ failed
            await self.service.close()


app = cast("Deployment", Predictor).bind()
