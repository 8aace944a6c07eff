"""An open-loop HTTP load in Python, for benchmarks that need every request's time and outcome
(wrk gives distributions only): request i is due at t0 + i / rate, whatever the earlier ones are
doing, so a stall shows as latency and errors, not as a lower offered rate. Each request records
when it was actually sent: a load generator that falls behind its schedule (``lag_s``) would
measure itself, not the service."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np


@dataclass
class Requests:
    """Every request of one run: when it was sent (seconds from the start), how late against its
    schedule, its status (0: no answer) and its latency."""

    sent: list[float] = field(default_factory=list)
    lag_s: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float, mask: np.ndarray | None = None) -> float | None:
        """The ``q``-th percentile of the successful requests' latency (within ``mask``)."""
        ok = np.array(self.status) == 200
        chosen = ok if mask is None else ok & mask
        return round(float(np.percentile(np.array(self.latency_ms)[chosen], q)), 2) if chosen.any() else None

    @property
    def lag_p99_s(self) -> float:
        return round(float(np.percentile(self.lag_s, 99)), 3) if self.lag_s else 0.0


async def open_loop(url: str, ids: list[str], rate: float, seconds: float, t0: float,
                    out: Requests, headers: dict[str, str] | None = None) -> None:
    """POST /v1/predict for a random id of ``ids`` at ``rate`` per second from ``t0`` for ``seconds``."""
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout, headers=headers) as http:
        async def one(due: float) -> None:
            started = time.monotonic()
            try:
                async with http.post("/v1/predict", json={"customer_id": random.choice(ids)}) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            out.sent.append(started - t0)
            out.lag_s.append(started - due)
            out.status.append(status)
            out.latency_ms.append((time.monotonic() - started) * 1000)

        tasks = []
        for i in range(int(seconds * rate)):
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
