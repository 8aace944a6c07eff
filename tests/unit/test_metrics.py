"""The service's metrics on prometheus_client (as the bare baseline records them): request latency
by route and status, predictions tallied and handed over on flush."""
from __future__ import annotations

import asyncio

import httpx
from fastapi.responses import JSONResponse

from serve_app.metrics import LatencyMiddleware, PrometheusInstruments, ServiceMetrics


async def answer(scope, receive, send) -> None:
    await JSONResponse({}, status_code=299)(scope, receive, send)


def test_the_baseline_records_each_request_latency_by_route_and_status():
    """Under uvicorn LatencyMiddleware records what Serve records for its replicas."""
    instruments = PrometheusInstruments()
    app = LatencyMiddleware(answer, instruments)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:
            await http.post("/v1/predict", json={})
            await http.get("/anything/else")

    asyncio.run(run())
    exposition = instruments.exposition().decode()
    assert 'churn_request_latency_ms_count{route="/v1/predict",status="299"} 1.0' in exposition
    assert 'churn_request_latency_ms_count{route="other",status="299"} 1.0' in exposition


def test_predictions_are_counted_by_segment_when_flushed():
    instruments = PrometheusInstruments()
    metrics = ServiceMetrics(instruments)
    metrics.scored(["high", "low", "high"])
    assert "churn_predictions_total{" not in instruments.exposition().decode(), "tallied until flushed"
    metrics.flush()
    metrics.scored(["high"])
    metrics.flush()
    metrics.flush()
    exposition = instruments.exposition().decode()
    assert 'churn_predictions_total{segment="high"} 3.0' in exposition
    assert 'churn_predictions_total{segment="low"} 1.0' in exposition
