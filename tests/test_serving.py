"""The prediction service against real Redis and a real Serve deployment (throughput-optimised
Serve behind HAProxy, on a Ray head of its own started the way `churn serve` starts it), plus the
same API in-process (the benchmark's bare baseline) for what needs other settings."""
from __future__ import annotations

import asyncio
import shutil
import time

import httpx
import numpy as np
import pytest
from _online import free_port, online_settings, running_redis
from conftest import register_model, synthetic_customers, write_snapshot

from features.feature_set import FeatureSet, FeatureSpec
from features.online.redis_writer import RedisOnlineStore
from ml import registry
from ml.scoring import segments
from ray_jobs.supervisors import serve_deployment
from serve_app.api import create_api
from serve_app.metrics import FLUSH_S, PrometheusInstruments, ServiceMetrics
from serve_app.service import PredictionService

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200),
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]

FRAME, FEATURES = synthetic_customers(3_000)
IDS = FRAME["customer_id"].tolist()


def publish(settings, frame=FRAME, features=FEATURES, source="test") -> str:
    store = RedisOnlineStore(settings)
    version = store.begin(features, source)
    store.put_many(version.id, frame["customer_id"].tolist(), frame[features.names].to_numpy("float32"))
    store.flip(version.id, expected_rows=len(frame))
    return version.id


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Redis with the customers materialised, a champion in the registry, the service deployed."""
    state = tmp_path_factory.mktemp("serving")
    with running_redis(state / "redis-home") as redis_server:
        settings = online_settings(state, redis_server.cfg.port,
                                   serve={"port": free_port(), "model_poll_s": 1.0, "ready_timeout_s": 600})
        snapshot = write_snapshot(settings, FRAME, FEATURES)
        register_model(settings, snapshot)
        publish(settings, source=snapshot.id)
        try:
            serve_deployment.deploy(settings)
            serve_deployment.wait_ready(settings)
            yield settings, redis_server, snapshot
        finally:
            serve_deployment.shutdown(settings)


@pytest.fixture(scope="module")
def client(stack):
    settings = stack[0]
    with httpx.Client(base_url=serve_deployment.route(settings), timeout=30) as http:
        yield http


def expected_proba(settings, rows: np.ndarray, version: str = "1") -> np.ndarray:
    return registry.load(settings, version).booster.inplace_predict(rows)


def test_predict(stack, client):
    settings = stack[0]
    r = client.post("/v1/predict", json={"customer_id": IDS[7]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"customer_id", "churn_probability", "risk_segment", "top_reasons", "model_version",
                         "feature_version", "latency_ms"}
    row = FRAME.loc[FRAME.customer_id == IDS[7], FEATURES.names].to_numpy("float32")
    assert body["churn_probability"] == pytest.approx(float(expected_proba(settings, row)[0]), abs=1e-6)
    bounds = segments.tier_bounds(settings.segments)
    assert body["risk_segment"] == segments.assign(np.array([body["churn_probability"]]), bounds)[0]
    assert body["model_version"] == "1" and body["feature_version"] == "v1" and body["latency_ms"] > 0
    reasons = body["top_reasons"]
    assert 0 < len(reasons) <= settings.segments.top_reasons
    assert all(r["feature"] in FEATURES.names and r["contribution"] > 0 for r in reasons)
    assert [r["contribution"] for r in reasons] == sorted((r["contribution"] for r in reasons), reverse=True)


def test_overrides_replace_stored_values(stack, client):
    settings = stack[0]
    overrides = {"tickets_30d": 6, "contract_type": "month_to_month", "monthly_price": 99.5}
    r = client.post("/v1/predict", json={"customer_id": IDS[3], "overrides": overrides})
    assert r.status_code == 200, r.text
    row = FRAME.loc[FRAME.customer_id == IDS[3], FEATURES.names].copy()
    row["tickets_30d"], row["contract_type"], row["monthly_price"] = 6, 0, 99.5
    expected = expected_proba(settings, row.to_numpy("float32"))[0]
    assert r.json()["churn_probability"] == pytest.approx(float(expected), abs=1e-6)


def test_batch(stack, client):
    settings = stack[0]
    ids = [IDS[1], "nobody", IDS[2], IDS[1]]
    r = client.post("/v1/predict/batch", json={"customer_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["customer_id"] for p in body["predictions"]] == [IDS[1], IDS[2], IDS[1]]
    assert body["missing"] == ["nobody"] and body["model_version"] == "1" and body["feature_version"] == "v1"
    rows = FRAME.set_index("customer_id").loc[[IDS[1], IDS[2], IDS[1]], FEATURES.names].to_numpy("float32")
    np.testing.assert_allclose([p["churn_probability"] for p in body["predictions"]],
                               expected_proba(settings, rows), atol=1e-6)
    r = client.post("/v1/predict/batch", json={"customer_ids": IDS[:1000]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1000
    r = client.post("/v1/predict/batch", json={"customer_ids": IDS[:1001]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "customer_ids"]


@pytest.mark.parametrize("body, field", [
    ({"customer_id": "C000001", "overrides": {"not_a_feature": 1}}, ["body", "overrides", "not_a_feature"]),
    ({"customer_id": "C000001", "overrides": {"tickets_30d": "many"}}, ["body", "overrides", "tickets_30d"]),
    ({"customer_id": "C000001", "overrides": {"tickets_30d": 1.5}}, ["body", "overrides", "tickets_30d"]),
    ({"customer_id": "C000001", "overrides": {"monthly_price": True}}, ["body", "overrides", "monthly_price"]),
    ({"customer_id": "C000001", "overrides": {"contract_type": "lifetime"}}, ["body", "overrides", "contract_type"]),
    ({"customer_id": 42}, ["body", "customer_id"]),
    ({"overrides": {}}, ["body", "customer_id"]),
    ({"customer_id": "C000001", "extra": 1}, ["body", "extra"]),
])
def test_bad_input_is_a_422_naming_the_field(client, body, field):
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["loc"] for e in r.json()["detail"]]


def test_malformed_json_and_unknown_customer(client):
    r = client.post("/v1/predict", content=b'{"customer_id": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Traceback" not in r.text
    r = client.post("/v1/predict", json={"customer_id": "C999999"})
    assert r.status_code == 404 and r.json()["customer_id"] == "C999999" and "C999999" in r.json()["detail"]


def test_health_readiness_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert set(ready.json()["checks"]) == {"model", "redis", "features"}
    assert client.get("/docs").status_code == 200
    overrides = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]["properties"]["overrides"]
    assert set(overrides["properties"]) == set(FEATURES.names)


def test_redis_outage_is_a_503_then_recovers(stack, client):
    _, redis_server, _ = stack
    redis_server.down()
    try:
        r = client.post("/v1/predict", json={"customer_id": IDS[0]})
        assert r.status_code == 503 and "feature store unavailable" in r.json()["detail"]
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
    finally:
        redis_server.up()
    deadline, in_a_row = time.monotonic() + 30, 0
    while in_a_row < 20:  # every replica is back, not just the first to answer
        r = client.post("/v1/predict", json={"customer_id": IDS[0]})
        in_a_row = in_a_row + 1 if r.status_code == 200 else 0
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05 if r.status_code == 200 else 0.2)
    assert client.get("/readyz").status_code == 200


def test_alias_switch_under_load_fails_no_request(stack):
    """Register version 2 as champion while 8 clients keep predicting: every answer is a 200 and
    the replicas end up on version 2."""
    settings, _, snapshot = stack
    statuses: list[int] = []
    versions: list[str] = []
    failures: list[str] = []

    async def load(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=serve_deployment.route(settings), timeout=30) as http:
            async def worker(k: int) -> None:
                i = k
                while not stop.is_set():
                    r = await http.post("/v1/predict", json={"customer_id": IDS[i % len(IDS)]})
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        versions.append(r.json()["model_version"])
                    else:
                        failures.append(f"{r.status_code} {r.text[:300]}")
                    i += 8

            await asyncio.gather(*(worker(k) for k in range(8)))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(load(stop))
        await asyncio.sleep(2)
        await asyncio.to_thread(register_model, settings, snapshot, "champion", 1)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and versions[-50:].count("2") < 50:
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
        stop.set()
        await task

    asyncio.run(scenario())
    assert len(statuses) > 100
    assert set(statuses) == {200}, ({s: statuses.count(s) for s in set(statuses)}, failures[:5])
    assert versions[0] == "1" and versions[-1] == "2"
    assert set(versions[-50:]) == {"2"}


# ------------------------------------------------------------------------------- in-process
@pytest.fixture(scope="module")
def local_api(stack):
    """The API in this process (as the bare baseline serves it), on the module's Redis and
    registry but its own key namespace, with an API key."""
    settings = stack[0].model_copy(update={
        "online": stack[0].online.model_copy(update={"namespace": "local:fv"}),
        "serve": stack[0].serve.model_copy(update={"api_key": "s3cret"}),
    })
    publish(settings)

    async def make(instruments=None):
        service = await PredictionService.start(settings, ServiceMetrics(instruments or PrometheusInstruments()))
        return service, create_api(service, service.score_one)

    return settings, make


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
