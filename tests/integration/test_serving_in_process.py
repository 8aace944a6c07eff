"""The prediction API in this process (as the benchmark's bare baseline serves it) on a real Redis
and registry, with an API key: authentication, the metrics flush, features of another layout,
unexpected errors. (The Serve deployment over HTTP is test_serving.py.)"""
from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest

from core.processes import free_port
from features.feature_set import FeatureSet, FeatureSpec
from features.online.redis_writer import RedisOnlineStore
from serve_app.api import create_api
from serve_app.metrics import FLUSH_S, PrometheusInstruments, ServiceMetrics
from serve_app.service import PredictionService

from _online import online_settings, publish, running_redis
from support import register_model, synthetic_customers, write_snapshot

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]

FRAME, FEATURES = synthetic_customers(3_000)
IDS = FRAME["customer_id"].tolist()


@pytest.fixture(scope="module")
def local_api(tmp_path_factory):
    """Redis with the customers materialised in the key namespace "local:fv", a champion in the
    registry, an API key; ``make`` starts the service and its API in this process."""
    state = tmp_path_factory.mktemp("serving-in-process")
    with running_redis(state / "redis-home") as redis_server:
        settings = online_settings(state, redis_server.cfg.port, online={"namespace": "local:fv"},
                                   serve={"port": free_port(), "model_poll_s": 1.0, "ready_timeout_s": 600,
                                          "api_key": "s3cret"})
        snapshot = write_snapshot(settings, FRAME, FEATURES)
        register_model(settings, snapshot)
        publish(settings, FRAME, FEATURES)

        async def make(instruments=None):
            service = await PredictionService.start(settings, ServiceMetrics(instruments or PrometheusInstruments()))
            return service, create_api(service, service.score_one)

        yield settings, make


def test_api_key_is_required_when_configured(local_api):
    _, make = local_api

    async def scenario():
        service, api = await make()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://t") as http:
            body = {"customer_id": IDS[0]}
            assert (await http.post("/v1/predict", json=body)).status_code == 401
            assert (await http.post("/v1/predict", json=body, headers={"X-API-Key": "wrong"})).status_code == 401
            non_ascii = {"X-API-Key": "s3crét".encode()}  # a 401 like any wrong key, not a 500
            assert (await http.post("/v1/predict", json=body, headers=non_ascii)).status_code == 401
            assert (await http.post("/v1/predict", json=body, headers={"X-API-Key": "s3cret"})).status_code == 200
            assert (await http.get("/healthz")).status_code == 200  # probes need no key
        await service.close()

    asyncio.run(scenario())


def test_predictions_reach_the_metrics_within_a_flush_interval(local_api):
    _, make = local_api
    instruments = PrometheusInstruments()

    async def scenario():
        service, api = await make(instruments)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://t",
                                     headers={"X-API-Key": "s3cret"}) as http:
            segment = (await http.post("/v1/predict", json={"customer_id": IDS[0]})).json()["risk_segment"]
            await asyncio.sleep(FLUSH_S * 1.5)
            assert f'churn_predictions_total{{segment="{segment}"}} 1.0' in instruments.exposition().decode()
        await service.close()

    asyncio.run(scenario())


def test_features_of_another_layout_are_never_decoded(local_api):
    """A materialisation with another FeatureSet: readiness and predictions say so (503);
    rolling the features back restores service."""
    settings, make = local_api
    other = FeatureSet((*FEATURES.features, FeatureSpec("extra", "float", "new", "test")))
    frame = FRAME.assign(extra=1.0)

    async def scenario():
        service, api = await make()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://t",
                                     headers={"X-API-Key": "s3cret"}) as http:
            publish(settings, frame, other)
            service.reader.ttl_s = 0
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["features"]["ok"] is False
            r = await http.post("/v1/predict", json={"customer_id": IDS[0]})
            assert r.status_code == 503 and "disagree" in r.json()["detail"]
            RedisOnlineStore(settings).rollback()
            assert (await http.post("/v1/predict", json={"customer_id": IDS[0]})).status_code == 200
        await service.close()

    asyncio.run(scenario())


def test_unexpected_errors_are_a_500_without_a_trace(local_api):
    _, make = local_api

    async def scenario():
        service, api = await make()
        service.model.engine.predict = lambda X: 1 / 0
        transport = httpx.ASGITransport(api, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": "s3cret"}) as http:
            r = await http.post("/v1/predict", json={"customer_id": IDS[0]})
            assert r.status_code == 500 and r.json() == {"detail": "internal error (logged)"}
        await service.close()

    asyncio.run(scenario())
