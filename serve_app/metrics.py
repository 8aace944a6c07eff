"""Prometheus metrics of the service: predictions by risk segment, feature misses, Redis errors
and the model version loaded, plus request latency.

Under Serve they are Ray metrics (``ray.serve.metrics``: exported by every node's metrics agent,
tagged with deployment and replica, summed across replicas by Prometheus), and request latency is
Serve's own histogram: with direct ingress each replica records every request in
``ray_serve_http_request_latency_ms`` (by route, method and status code). The app records no second
one: Ray's metrics agent replays every histogram observation one by one
(``record_histogram_aggregated_batch``), a per-request cost on the same cores. The bare-uvicorn
baseline records the same series with ``prometheus_client``, its latency through
``LatencyMiddleware``, and exposes them at ``/metrics``.
"""
from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Scope, Send

LATENCY_BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000]
ROUTES = frozenset({"/v1/predict", "/v1/predict/batch", "/readyz", "/healthz"})
FLUSH_S = 1.0


class Instrument(Protocol):
    def record(self, value: float, tags: dict[str, str]) -> None: ...


class Instruments(Protocol):
    """Makes counters, gauges and histograms of one metrics library."""

    def counter(self, name: str, doc: str, tags: tuple[str, ...]) -> Instrument: ...

    def gauge(self, name: str, doc: str, tags: tuple[str, ...]) -> Instrument: ...

    def histogram(self, name: str, doc: str, buckets: list[float], tags: tuple[str, ...]) -> Instrument: ...


class _Recorder:
    def __init__(self, record: Callable[[float, dict[str, str]], None]) -> None:
        self.record = record


class RayInstruments:
    """``ray.serve.metrics``: use inside a Serve replica."""

    def counter(self, name: str, doc: str, tags: tuple[str, ...]) -> Instrument:
        from ray.serve import metrics

        c = metrics.Counter(name, description=doc, tag_keys=cast("tuple[str]", tags))
        return _Recorder(lambda v, t: c.inc(v, tags=t))

    def gauge(self, name: str, doc: str, tags: tuple[str, ...]) -> Instrument:
        from ray.serve import metrics

        g = metrics.Gauge(name, description=doc, tag_keys=cast("tuple[str]", tags))
        return _Recorder(lambda v, t: g.set(v, tags=t))

    def histogram(self, name: str, doc: str, buckets: list[float], tags: tuple[str, ...]) -> Instrument:
        from ray.serve import metrics

        h = metrics.Histogram(name, description=doc, boundaries=buckets, tag_keys=cast("tuple[str]", tags))
        return _Recorder(lambda v, t: h.observe(v, tags=t))


class PrometheusInstruments:
    """``prometheus_client`` in its own registry: use in a plain process."""

    def __init__(self) -> None:
        import prometheus_client

        self.lib = prometheus_client
        self.registry = prometheus_client.CollectorRegistry()

    def _wrap(self, metric: Any, method: str) -> Instrument:
        return _Recorder(lambda v, t: getattr(metric.labels(**t) if t else metric, method)(v))

    def counter(self, name: str, doc: str, tags: tuple[str, ...]) -> Instrument:
        return self._wrap(self.lib.Counter(name, doc, tags, registry=self.registry), "inc")

    def gauge(self, name: str, doc: str, tags: tuple[str, ...]) -> Instrument:
        return self._wrap(self.lib.Gauge(name, doc, tags, registry=self.registry), "set")

    def histogram(self, name: str, doc: str, buckets: list[float], tags: tuple[str, ...]) -> Instrument:
        return self._wrap(self.lib.Histogram(name, doc, tags, buckets=buckets, registry=self.registry), "observe")

    def exposition(self) -> bytes:
        return self.lib.generate_latest(self.registry)


class ServiceMetrics:
    """The service's series, on any ``Instruments``. Predictions are tallied in the process and
    handed to the library by ``flush``, which the service calls every ``FLUSH_S``: a Ray counter
    increment per batch is a visible share of a replica's CPU."""

    def __init__(self, instruments: Instruments) -> None:
        self._scored: Tally[str] = Tally()
        self.predictions = instruments.counter(
            "churn_predictions", "Customers scored, by risk segment.", ("segment",))
        self.misses = instruments.counter(
            "churn_feature_misses", "Customers asked for that the online store does not hold.", ())
        self.redis_errors = instruments.counter(
            "churn_redis_errors", "Requests that failed because the feature store was unreachable.", ())
        self.model_version = instruments.gauge(
            "churn_model_version", "Registry version of the model being served.", ())

    def scored(self, segments: Iterable[str]) -> None:
        self._scored.update(segments)

    def flush(self) -> None:
        pending, self._scored = self._scored, Tally()
        for segment, n in pending.items():
            self.predictions.record(n, {"segment": segment})

    def missed(self, n: int) -> None:
        if n:
            self.misses.record(n, {})

    def redis_error(self) -> None:
        self.redis_errors.record(1, {})

    def model_loaded(self, version: str) -> None:
        self.model_version.record(float(version) if version.isdigit() else -1.0, {})


class LatencyMiddleware:
    """Pure-ASGI middleware recording every HTTP request's latency, by route and status, where no
    server does it (the bare baseline; cheaper than Starlette's BaseHTTPMiddleware, which costs a
    task per request)."""

    def __init__(self, app: Any, instruments: Instruments) -> None:
        self.app = app
        self.latency = instruments.histogram(
            "churn_request_latency_ms", "Time to answer a request, by route and status.", LATENCY_BUCKETS_MS,
            ("route", "status"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.latency.record((time.perf_counter() - started) * 1e3, {"route": route, "status": str(status)})
