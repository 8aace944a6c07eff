"""Joining (or starting) the Ray cluster a job runs on."""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import ray

from core.logs import RUN_ID_ENV, current_run_id
from core.settings import Settings

log = logging.getLogger(__name__)


START_ATTEMPTS = 3


def init_with_retry(**kwargs) -> None:
    """``ray.init``, retried when a new local node fails to come up.

    On a busy small machine the raylet can die waiting for its metrics agent (a fixed 15 s in
    Ray 2.60, ray-project/ray#65983), and ``ray.init`` then fails with "timed out during
    startup"; a second start normally succeeds. Connecting to an existing cluster is not retried.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            ray.init(**kwargs)
            return
        except Exception as exc:  # Ray raises a bare Exception here
            if kwargs.get("address") or "timed out during startup" not in str(exc) or attempt == START_ATTEMPTS:
                raise
            log.warning("local Ray node did not start; retrying", extra={"attempt": attempt, "error": str(exc)})
            ray.shutdown()


@contextlib.contextmanager
def ray_session(settings: Settings) -> Iterator[None]:
    """Connect to ``settings.ray_address`` (or ``RAY_ADDRESS``), else start a local cluster.

    Shuts Ray down afterwards only if this call started it. Workers inherit the run id so their
    log lines carry it too.
    """
    if ray.is_initialized():
        yield
        return
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {
        "address": address,
        # Ray Train watches its controller through the dashboard's state API: without it every
        # stopped Tune trial (ASHA) leaks its workers' placement group, and each run's placement-
        # group cleaner warns once a second that the API is unavailable. No measurable cost to a run here.
        "include_dashboard": True,
        "runtime_env": {"env_vars": {RUN_ID_ENV: current_run_id()}},
        "logging_level": logging.WARNING,
    }
    if not address:
        kwargs["num_cpus"] = settings.ray_num_cpus
    init_with_retry(**kwargs)
    resources = ray.cluster_resources()
    log.info("ray connected", extra={"address": address or "local", "cpus": resources.get("CPU")})
    try:
        yield
    finally:
        ray.shutdown()
