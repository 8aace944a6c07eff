"""The prediction service against real Redis and a real Serve deployment (throughput-optimised
Serve behind HAProxy, on a Ray head of its own started the way `churn serve` starts it): one
deployment for the module; single predictions, batches, validation, probes, a Redis outage and
a champion switch under load."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import zlib

import httpx
import hypothesis
import numpy as np
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from core.processes import free_port
from ml import registry
from ml.scoring import segments
from ray_jobs.supervisors import serve_deployment
from serve_app.next_action import NextActions

from _load import Load
from _online import online_settings, publish, running_redis
from support import register_model, register_uplift_model, synthetic_customers, write_snapshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200),
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]

FRAME, FEATURES = synthetic_customers(3_000)
IDS = FRAME["customer_id"].tolist()
API_KEY = "route-key-from-a-secret"
"""Set as the RayService sets it (CHURN_SERVE__API_KEY, which the deployment passes to every replica)."""
AUTH = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Redis with the customers materialised, a champion in the registry, the service deployed."""
    state = tmp_path_factory.mktemp("serving")
    with running_redis(state / "redis-home") as redis_server:
        settings = online_settings(state, redis_server.cfg.port,
                                   serve={"port": free_port(), "model_poll_s": 1.0, "ready_timeout_s": 600,
                                          "api_key": API_KEY})
        snapshot = write_snapshot(settings, FRAME, FEATURES)
        register_model(settings, snapshot)
        register_uplift_model(settings, FRAME, FEATURES)
        publish(settings, FRAME, FEATURES, source=snapshot.id)
        try:
            serve_deployment.deploy(settings)
            serve_deployment.wait_ready(settings)
            yield settings, redis_server, snapshot
        finally:
            serve_deployment.shutdown(settings)


@pytest.fixture(scope="module")
def client(stack):
    settings = stack[0]
    with httpx.Client(base_url=serve_deployment.route(settings), timeout=30, headers=AUTH) as http:
        yield http


@pytest.mark.parametrize("path, body", [("/v1/predict", {"customer_id": IDS[0]}),
                                        ("/v1/predict/batch", {"customer_ids": IDS[:2]})])
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": API_KEY + "x"}])
def test_a_call_without_the_right_key_is_a_401(stack, path, body, headers):
    r = httpx.post(serve_deployment.route(stack[0]) + path, json=body, headers=headers, timeout=30)
    assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]


def expected_proba(settings, rows: np.ndarray, version: str = "1") -> np.ndarray:
    return registry.load(settings, version).booster.inplace_predict(rows)


# --------------------------------------------------------------------------- one prediction
@pytest.fixture(scope="module")
def predicted(client) -> httpx.Response:
    return client.post("/v1/predict", json={"customer_id": IDS[7]})


@pytest.fixture(scope="module")
def prediction(predicted) -> dict:
    assert predicted.status_code == 200, predicted.text
    return predicted.json()


def test_predict_answers_200(predicted):
    assert predicted.status_code == 200, predicted.text


def test_predict_returns_the_documented_fields(prediction):
    assert set(prediction) == {"customer_id", "churn_probability", "risk_segment", "top_reasons",
                               "next_best_action", "model_version", "feature_version", "latency_ms"}


def test_predict_probability_is_the_champion_probability(stack, prediction):
    settings = stack[0]
    row = FRAME.loc[FRAME.customer_id == IDS[7], FEATURES.names].to_numpy("float32")
    assert prediction["churn_probability"] == pytest.approx(float(expected_proba(settings, row)[0]), abs=1e-6)


def test_predict_recommends_the_uplift_models_next_best_action_for_the_stored_row(stack, prediction):
    settings = stack[0]
    row = FRAME.loc[FRAME.customer_id == IDS[7], FEATURES.names].to_numpy("float32")
    expected = NextActions.load(settings, FEATURES).choose(row, expected_proba(settings, row))[0]
    action = prediction["next_best_action"]
    assert action["basis"] == "uplift model v1" and action["intervention"] in (None, "discount")
    assert action == pytest.approx(expected, abs=1e-5)


def test_predict_segment_follows_the_tier_bounds(stack, prediction):
    bounds = segments.tier_bounds(stack[0].segments)
    assert prediction["risk_segment"] == segments.assign(np.array([prediction["churn_probability"]]), bounds)[0]


def test_predict_names_the_model_and_feature_versions_and_its_latency(prediction):
    assert prediction["model_version"] == "1" and prediction["feature_version"] == "v1"
    assert prediction["latency_ms"] > 0


def test_predict_reasons_are_model_features_that_raise_the_risk_largest_first(stack, prediction):
    reasons = prediction["top_reasons"]
    assert 0 < len(reasons) <= stack[0].segments.top_reasons
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


# --------------------------------------------------------------------------- batches
BATCH = [IDS[1], "nobody", IDS[2], IDS[1]]


@pytest.fixture(scope="module")
def batch(client) -> dict:
    r = client.post("/v1/predict/batch", json={"customer_ids": BATCH})
    assert r.status_code == 200, r.text
    return r.json()


def test_batch_answers_known_ids_in_request_order(batch):
    assert [p["customer_id"] for p in batch["predictions"]] == [IDS[1], IDS[2], IDS[1]]


def test_batch_lists_the_missing_ids_and_the_versions(batch):
    assert batch["missing"] == ["nobody"] and batch["model_version"] == "1" and batch["feature_version"] == "v1"


def test_batch_probabilities_are_the_champion_probabilities(stack, batch):
    rows = FRAME.set_index("customer_id").loc[[IDS[1], IDS[2], IDS[1]], FEATURES.names].to_numpy("float32")
    np.testing.assert_allclose([p["churn_probability"] for p in batch["predictions"]],
                               expected_proba(stack[0], rows), atol=1e-6)


def test_batch_of_1000_is_answered(client):
    r = client.post("/v1/predict/batch", json={"customer_ids": IDS[:1000]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1000


def test_batch_over_1000_is_a_422_naming_the_field(client):
    r = client.post("/v1/predict/batch", json={"customer_ids": IDS[:1001]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "customer_ids"]


# --------------------------------------------------------------------------- bad input, probes
@pytest.mark.parametrize("body, field", [
    ({"customer_id": "C000001", "overrides": {"not_a_feature": 1}}, ["body", "overrides", "not_a_feature"]),
    ({"customer_id": "C000001", "overrides": {"tickets_30d": "many"}}, ["body", "overrides", "tickets_30d"]),
    ({"customer_id": "C000001", "overrides": {"tickets_30d": 1.5}}, ["body", "overrides", "tickets_30d"]),
    ({"customer_id": "C000001", "overrides": {"monthly_price": True}}, ["body", "overrides", "monthly_price"]),
    ({"customer_id": "C000001", "overrides": {"contract_type": "lifetime"}}, ["body", "overrides", "contract_type"]),
    ({"customer_id": 42}, ["body", "customer_id"]),
    ({"overrides": {}}, ["body", "customer_id"]),
    ({"customer_id": "C000001", "extra": 1}, ["body", "extra"]),
    ({"customer_id": "C000001", "overrides": {"monthly_price": 1e39}}, ["body", "overrides", "monthly_price"]),
    ({"customer_id": "C000001", "overrides": {"tickets_30d": 10**400}}, ["body", "overrides", "tickets_30d"]),
])
def test_bad_input_is_a_422_naming_the_field(client, body, field):
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["loc"] for e in r.json()["detail"]]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_a_non_finite_override_is_a_422_naming_the_feature(client, number):
    """JSON parsers accept NaN and Infinity and read 1e309 as infinity: none is a feature value."""
    body = f'{{"customer_id": "C000001", "overrides": {{"tenure_days": {number}}}}}'
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert ["body", "overrides", "tenure_days"] in [e["loc"] for e in r.json()["detail"]]


def test_a_body_that_is_not_utf8_is_the_documented_400(client):
    r = client.post("/v1/predict", content=b'{"customer_id": "\xff\xfe"}', headers={"content-type": "application/json"})
    documented = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["responses"]
    assert r.status_code == 400 and "400" in documented and "Traceback" not in r.text


def test_malformed_json_is_a_422_without_a_trace(client):
    r = client.post("/v1/predict", content=b'{"customer_id": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Traceback" not in r.text


def test_unknown_customer_is_a_404_naming_it(client):
    r = client.post("/v1/predict", json={"customer_id": "C999999"})
    assert r.status_code == 404 and r.json()["customer_id"] == "C999999" and "C999999" in r.json()["detail"]


def test_health_is_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readiness_checks_the_model_redis_and_features(client):
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert set(ready.json()["checks"]) == {"model", "redis", "features"}


def test_docs_are_served(client):
    assert client.get("/docs").status_code == 200


def test_openapi_documents_every_feature_as_an_override(client):
    overrides = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]["properties"]["overrides"]
    assert set(overrides["properties"]) == set(FEATURES.names)


@pytest.fixture(scope="module")
def openapi(stack):
    return schemathesis.openapi.from_url(serve_deployment.route(stack[0]) + "/openapi.json")


def _with_known_customers(body: object) -> None:
    """Half the generated ids become stored customers, so the fuzzing reaches the model as well as the 404."""
    if not isinstance(body, dict):
        return
    if isinstance(body.get("customer_id"), str) and (code := zlib.crc32(body["customer_id"].encode())) % 2:
        body["customer_id"] = IDS[code % len(IDS)]
    if isinstance(body.get("customer_ids"), list):
        body["customer_ids"] = [IDS[i % len(IDS)] if i % 2 else c for i, c in enumerate(body["customer_ids"])]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_fuzzed_requests_get_no_server_error_and_only_documented_statuses(openapi, mode):
    """Schemathesis on every operation of the service's own OpenAPI document, valid and invalid requests."""
    operations = [result.ok() for result in openapi.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/predict/batch", "/readyz"}
    for operation in operations:
        if mode is schemathesis.GenerationMode.NEGATIVE and not operation.get_request_payload_content_types():
            continue  # nothing to make invalid
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(max_examples=40, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def answers_as_documented(case):
            _with_known_customers(case.body)
            case.call_and_validate(headers=AUTH, checks=[not_a_server_error, status_code_conformance,
                                                          response_schema_conformance])

        answers_as_documented()


# --------------------------------------------------------------------------- failures and switches
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


def replica_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ServeReplica:churn:Predictor"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_a_serve_replica_killed_under_load_fails_no_request(stack):
    """SIGKILL one of the two replicas while 8 clients predict: HAProxy replays on the other
    replica every request the dead one had taken (httpx writes headers and body apart, the case
    that needs the whole request buffered), and Serve starts a replacement."""
    settings = stack[0]
    load = Load(serve_deployment.route(settings), IDS, AUTH)
    before = replica_pids()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(load.run(stop))
        await asyncio.sleep(2)
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(set(replica_pids()) - set(before)) < 1:
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # the replacement serving too
        stop.set()
        await task

    asyncio.run(scenario())
    assert len(before) == 2 and len(set(replica_pids()) - set(before)) == 1
    assert len(load.statuses) > 200
    assert set(load.statuses) == {200}, (load.counts, load.failures[:5])


def test_alias_switch_under_load_fails_no_request(stack):
    """Register version 2 as champion while 8 clients keep predicting: every answer is a 200 and
    the replicas end up on version 2."""
    settings, _, snapshot = stack
    load = Load(serve_deployment.route(settings), IDS, AUTH)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(load.run(stop))
        await asyncio.sleep(2)
        await asyncio.to_thread(register_model, settings, snapshot, "champion", 1)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and load.versions[-50:].count("2") < 50:
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
        stop.set()
        await task

    asyncio.run(scenario())
    assert len(load.statuses) > 100
    assert set(load.statuses) == {200}, (load.counts, load.failures[:5])
    assert load.versions[0] == "1" and load.versions[-1] == "2"
    assert set(load.versions[-50:]) == {"2"}
