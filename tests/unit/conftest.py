"""The unit tests need no Ray, Spark, Redis server, MLflow store or other subprocess service.
The Ray fixtures live in integration/conftest.py and are not visible here; this guard also
fails a unit test that starts Ray by itself (a Ray cluster left by earlier integration modules
of a full run does not count)."""
from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def _no_ray_started() -> Iterator[None]:
    before = _ray_running()
    yield
    assert before or not _ray_running(), "a unit test started Ray: it belongs in tests/integration/"
