"""Closed-loop prediction load for the availability tests: what the clients got while something failed."""
from __future__ import annotations

import asyncio

import httpx


class Load:
    """What ``clients`` clients predicting in a closed loop got: statuses, model versions, failures."""

    def __init__(self, route: str, ids: list[str], headers: dict[str, str] | None = None, clients: int = 8) -> None:
        self.route, self.ids, self.headers, self.clients = route, ids, headers or {}, clients
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self.failures: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.route, timeout=30, headers=self.headers) as http:
            async def worker(k: int) -> None:
                i = k
                while not stop.is_set():
                    try:
                        r = await http.post("/v1/predict", json={"customer_id": self.ids[i % len(self.ids)]})
                    except httpx.TransportError as exc:  # a broken connection
                        self.statuses.append(0)
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                        continue
                    self.statuses.append(r.status_code)
                    if r.status_code == 200:
                        self.versions.append(r.json()["model_version"])
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:300]}")
                    i += self.clients

            await asyncio.gather(*(worker(k) for k in range(self.clients)))

    @property
    def counts(self) -> dict[int, int]:
        return {s: self.statuses.count(s) for s in set(self.statuses)}
