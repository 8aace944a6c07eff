"""PredictFastPath on its own: which requests it answers, and that everything else reaches the
app behind it unchanged (body included)."""
from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.responses import JSONResponse

from serve_app.api import PredictFastPath


class Downstream:
    """The app behind the fast path: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await JSONResponse({"from": "app"}, status_code=299)(scope, receive, send)


class NotFound(LookupError):
    pass


async def predict(request):
    if request.customer_id == "gone":
        raise NotFound(request.customer_id)
    if request.customer_id == "boom":
        raise RuntimeError("boom")
    return {"customer_id": request.customer_id, "overrides": request.overrides}


async def internal(_, exc):
    return JSONResponse({"detail": "internal"}, status_code=500)


HANDLERS = {  # Starlette takes plain functions and coroutine functions alike
    LookupError: lambda _, exc: JSONResponse({"missing": str(exc)}, status_code=404),
    Exception: internal,
}


def call(method: str, path: str, api_key: str | None = None, **kwargs) -> tuple[httpx.Response, Downstream]:
    downstream = Downstream()
    app = PredictFastPath(downstream, predict=predict, api_key=api_key, handlers=HANDLERS)

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(run()), downstream


def test_a_valid_prediction_is_answered_without_the_app():
    r, app = call("POST", "/v1/predict", json={"customer_id": "C1", "overrides": {"x": 1}})
    assert r.status_code == 200 and r.json() == {"customer_id": "C1", "overrides": {"x": 1}}
    assert app.bodies == []


def test_an_error_gets_the_handler_of_its_closest_class():
    r, _ = call("POST", "/v1/predict", json={"customer_id": "gone"})
    assert r.status_code == 404 and r.json() == {"missing": "gone"}


def test_an_error_without_a_handler_of_its_own_gets_the_catch_all_handler():
    r, _ = call("POST", "/v1/predict", json={"customer_id": "boom"})
    assert r.status_code == 500 and r.json() == {"detail": "internal"}


@pytest.mark.parametrize("method, path, kwargs", [
    pytest.param("POST", "/v1/predict", {"json": {"customer_id": ""}}, id="invalid-the-app-says-why"),
    pytest.param("POST", "/v1/predict",
                 {"content": b'{"customer_id": "C1"', "headers": {"content-type": "application/json"}},
                 id="truncated-json"),
    pytest.param("POST", "/v1/predict",
                 {"content": b'{"customer_id": "C1"}', "headers": {"content-type": "text/plain"}},
                 id="not-json-content-type"),
    pytest.param("POST", "/v1/predict/batch", {"json": {"customer_ids": ["C1"]}}, id="batch-route"),
    pytest.param("GET", "/v1/predict", {}, id="get"),
])
def test_requests_it_cannot_vouch_for_reach_the_app_with_their_body(method, path, kwargs):
    r, app = call(method, path, **kwargs)
    assert r.status_code == 299, (method, path, kwargs)
    sent = kwargs.get("content") or (httpx.Request(method, "http://t", json=kwargs["json"]).content
                                     if "json" in kwargs else b"")
    assert app.bodies == [sent]


@pytest.mark.parametrize("headers, status", [
    pytest.param({}, 299, id="no-key-goes-to-the-app"),
    pytest.param({"X-API-Key": "bad"}, 299, id="wrong-key-goes-to-the-app"),
    pytest.param({"X-API-Key": "k"}, 200, id="right-key-is-answered"),
])
def test_the_api_key_is_checked_before_answering(headers, status):
    body = {"customer_id": "C1"}
    assert call("POST", "/v1/predict", api_key="k", json=body, headers=headers)[0].status_code == status
