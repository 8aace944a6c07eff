"""The same API and handler logic in a bare uvicorn process, without Ray: the benchmark's
baseline. Each request is scored on its own (no ``@serve.batch``); metrics are plain
prometheus_client series at ``/metrics``, request latency included (``LatencyMiddleware``: under
Serve, Serve records it).

    uvicorn serve_app.baseline:create --factory --port 8001
"""
from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.types import ASGIApp

from core import logs
from core.settings import get_settings
from serve_app.api import create_api
from serve_app.metrics import LatencyMiddleware, PrometheusInstruments, ServiceMetrics
from serve_app.service import PredictionService


def create() -> FastAPI:
    """The ASGI app (uvicorn ``--factory``): the service starts with the server's event loop."""
    logs.configure()
    instruments = PrometheusInstruments()
    metrics = ServiceMetrics(instruments)
    holder: dict[str, ASGIApp] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service = await PredictionService.start(get_settings(), metrics)
        api = create_api(service, service.score_one)
        api.add_route("/metrics", lambda _: Response(instruments.exposition(), media_type="text/plain"))
        holder["api"] = LatencyMiddleware(api, instruments)
        # What Serve does for its replicas after start-up (RAY_SERVE_FREEZE_GC_ON_STARTUP): take the
        # objects loaded so far out of the collector's reach. Without it every full collection
        # walks millions of them, pausing the server under load.
        gc.collect()
        gc.freeze()
        yield
        await service.close()

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await outer(scope, receive, send)
        else:
            await holder["api"](scope, receive, send)

    outer = FastAPI(lifespan=lifespan)
    return app  # type: ignore[return-value]
