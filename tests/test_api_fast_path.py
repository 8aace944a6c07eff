"""PredictFastPath on its own: which requests it answers, and that everything else reaches the
app behind it unchanged (body included)."""
from __future__ import annotations

import asyncio

import httpx
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


def test_raised_errors_get_the_handler_of_their_closest_class():
    r, _ = call("POST", "/v1/predict", json={"customer_id": "gone"})
    assert r.status_code == 404 and r.json() == {"missing": "gone"}
    r, _ = call("POST", "/v1/predict", json={"customer_id": "boom"})
    assert r.status_code == 500 and r.json() == {"detail": "internal"}


def test_requests_it_cannot_vouch_for_reach_the_app_with_their_body():
    cases = [
        ("POST", "/v1/predict", {"json": {"customer_id": ""}}),  # invalid: the app says why
        ("POST", "/v1/predict", {"content": b'{"customer_id": "C1"', "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/predict", {"content": b'{"customer_id": "C1"}', "headers": {"content-type": "text/plain"}}),
        ("POST", "/v1/predict/batch", {"json": {"customer_ids": ["C1"]}}),
        ("GET", "/v1/predict", {}),
    ]
    for method, path, kwargs in cases:
        r, app = call(method, path, **kwargs)
        assert r.status_code == 299, (method, path, kwargs)
        sent = kwargs.get("content") or (httpx.Request(method, "http://t", json=kwargs["json"]).content
                                         if "json" in kwargs else b"")
        assert app.bodies == [sent]


def test_the_api_key_is_checked_before_answering():
    body = {"customer_id": "C1"}
    assert call("POST", "/v1/predict", api_key="k", json=body)[0].status_code == 299
    assert call("POST", "/v1/predict", api_key="k", json=body, headers={"X-API-Key": "bad"})[0].status_code == 299
    assert call("POST", "/v1/predict", api_key="k", json=body, headers={"X-API-Key": "k"})[0].status_code == 200
