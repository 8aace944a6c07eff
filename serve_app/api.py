"""The HTTP API (FastAPI): routes, the optional API key, and errors mapped to clear statuses.

``create_api`` takes the service and the function that scores one request: the replica's
``@serve.batch`` method (concurrent requests share one feature read and one model call) or, with
batching off and in the bare baseline, the service's own ``score_one``.

FastAPI owns every route's contract (OpenAPI, validation errors, status codes). A valid
``POST /v1/predict`` with a JSON body, the one route the mobile app calls at volume, is answered by
``PredictFastPath`` in front of FastAPI's routing and dependency machinery, which cost about as
much as the prediction itself; it runs the same endpoint function and the same exception handlers.
"""
from __future__ import annotations

import hmac
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.feature_set import SchemaMismatch
from features.online.interface import NoLiveVersion, OnlineStoreError, StoreUnavailable
from serve_app.schemas import BatchPrediction, BatchRequest, Prediction, PredictRequest
from serve_app.service import CustomerNotFound, Outcome, PredictionService, ScoringRequest, elapsed_ms

log = logging.getLogger(__name__)

ScoreOne = Callable[[ScoringRequest], Awaitable[Outcome]]
Predict = Callable[[PredictRequest], Awaitable[dict[str, Any]]]
API_KEY_HEADER = "X-API-Key"
_API_KEY_FIELD = API_KEY_HEADER.lower().encode()  # as ASGI scopes carry header names
PREDICT_PATH = "/v1/predict"
_UNAVAILABLE = {
    StoreUnavailable: "feature store unavailable (Redis): {}; retry shortly",
    NoLiveVersion: "no online features: {}",
    SchemaMismatch: "online features and model disagree: {}",
}


def create_api(service: PredictionService, score_one: ScoreOne) -> FastAPI:
    app = FastAPI(title="Churn prediction", version="1", summary="Churn risk of a customer, with its reasons.")
    settings = service.settings
    api_key = settings.serve.api_key

    def check_key(x_api_key: str | None = Header(None, alias=API_KEY_HEADER)) -> None:
        # Starlette decodes header values as latin-1: encoding back gives the bytes sent
        if api_key and not key_matches(x_api_key.encode("latin-1") if x_api_key else None, api_key):
            raise HTTPException(401, f"missing or wrong {API_KEY_HEADER} header")

    secured = [Depends(check_key)] if api_key else []
    errors: dict[int | str, dict[str, Any]] = {
        400: {"description": "Body not readable as UTF-8 JSON"},
        503: {"description": "Feature store down or not loaded; retry after Retry-After seconds"},
        **({401: {"description": f"Missing or wrong {API_KEY_HEADER} header"}} if api_key else {}),
    }

    async def predict_one(body: PredictRequest) -> dict[str, Any]:
        started = time.perf_counter()
        outcome = await score_one(service.parse(body))
        if isinstance(outcome, CustomerNotFound):
            raise outcome
        return {**outcome, "latency_ms": elapsed_ms(started)}

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "Not ready: the failing checks"}})
    async def readyz() -> JSONResponse:
        """Model loaded, Redis reachable, online features laid out as the model expects."""
        ok, checks = await service.readiness()
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.post(PREDICT_PATH, response_model=Prediction, dependencies=secured, tags=["predict"],
              responses={**errors, 404: {"description": "Unknown customer"}})
    async def predict(body: PredictRequest) -> JSONResponse:
        """Churn probability, risk segment and top reasons of one customer."""
        return JSONResponse(await predict_one(body))

    @app.post("/v1/predict/batch", response_model=BatchPrediction, dependencies=secured, tags=["predict"],
              responses=errors)
    async def predict_batch(body: BatchRequest) -> JSONResponse:
        """Up to 1,000 customers: one Redis round trip, one vectorised predict."""
        started = time.perf_counter()
        if len(body.customer_ids) > settings.serve.max_batch_ids:
            raise RequestValidationError([{"type": "too_long", "loc": ("body", "customer_ids"),
                                           "msg": f"at most {settings.serve.max_batch_ids} ids"}])
        result = await service.score_ids(body.customer_ids)
        return JSONResponse({**result, "latency_ms": elapsed_ms(started)})

    @app.exception_handler(CustomerNotFound)
    async def not_found(_: Request, exc: CustomerNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "customer_id": exc.customer_id}, status_code=404)

    @app.exception_handler(OnlineStoreError)
    @app.exception_handler(SchemaMismatch)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        template = next((t for kind, t in _UNAVAILABLE.items() if isinstance(exc, kind)), "{}")
        return JSONResponse({"detail": template.format(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"detail": "internal error (logged)"}, status_code=500)

    app.openapi = lambda: _openapi(app, service)  # type: ignore[method-assign]
    app.add_middleware(PredictFastPath, predict=predict_one, api_key=api_key, handlers=app.exception_handlers)
    return app


class PredictFastPath:
    """Pure-ASGI middleware answering ``POST /v1/predict`` when the request is well-formed (JSON
    body valid as a PredictRequest, API key right): ``predict``'s result or, for what it raises,
    the response of the app's own exception handler. Any other request, and one that is not
    well-formed, goes on to FastAPI with its body replayed, so errors keep FastAPI's format."""

    def __init__(self, app: ASGIApp, predict: Predict, api_key: str | None,
                 handlers: Mapping[Any, Callable[..., Any]]) -> None:
        self.app = app
        self.predict = predict
        self.api_key = api_key
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PREDICT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        request = self._parse(scope, body)
        if request is None:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            response = JSONResponse(await self.predict(request))
        except Exception as exc:
            response = self._handler(exc)(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)

    def _parse(self, scope: Scope, body: bytes) -> PredictRequest | None:
        headers = dict(scope["headers"])
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return None
        if self.api_key and not key_matches(headers.get(_API_KEY_FIELD), self.api_key):
            return None
        try:
            return PredictRequest.model_validate_json(body)
        except ValidationError:
            return None

    def _handler(self, exc: Exception) -> Callable[..., Any]:
        """The app's handler of ``exc``'s closest class (as Starlette looks it up)."""
        return next(self.handlers[cls] for cls in type(exc).__mro__ if cls in self.handlers)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that hands out ``body`` first (already read), then the connection's messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def key_matches(presented: bytes | None, api_key: str) -> bool:
    """Constant-time check of a presented API key (raw header bytes, any characters)."""
    return presented is not None and hmac.compare_digest(presented, api_key.encode())


def _openapi(app: FastAPI, service: PredictionService) -> dict[str, Any]:
    """The OpenAPI document, with the overridable features of the model being served."""
    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    overrides = service.model.overrides.json_schema()
    target = schema["components"]["schemas"]["PredictRequest"]["properties"]["overrides"]
    target.update({k: overrides[k] for k in ("properties", "additionalProperties") if k in overrides},
                  title=f"Overrides (model {service.model.version})")
    return schema
