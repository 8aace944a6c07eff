"""An open-loop HTTP load in Python, for benchmarks that need every request's time and outcome
(wrk gives distributions only): request i is sent at t0 + i / rate, whatever the earlier ones
are doing, so a stall shows as latency and errors, not as a lower offered rate."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class Requests:
    """Every request of one run: when it was due (seconds from the start), its status (0: no
    answer) and its latency."""

    due: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float, mask: np.ndarray | None = None) -> float | None:
        """The ``q``-th percentile of the successful requests' latency (within ``mask``)."""
        ok = np.array(self.status) == 200
        chosen = ok if mask is None else ok & mask
        return round(float(np.percentile(np.array(self.latency_ms)[chosen], q)), 2) if chosen.any() else None


async def open_loop(url: str, ids: list[str], rate: float, seconds: float, t0: float,
                    out: Requests, headers: dict[str, str] | None = None) -> None:
    """POST /v1/predict for a random id of ``ids`` at ``rate`` per second from ``t0`` for ``seconds``."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits, headers=headers) as http:
        async def one(due: float) -> None:
            started = time.monotonic()
            try:
                r = await http.post("/v1/predict", json={"customer_id": random.choice(ids)})
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            out.due.append(due - t0)
            out.status.append(status)
            out.latency_ms.append((time.monotonic() - started) * 1000)

        tasks = []
        for i in range(int(seconds * rate)):
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
