"""Joining (or starting) the Ray cluster a job runs on."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

import ray

from ray_jobs.logs import RUN_ID_ENV, current_run_id
from ray_jobs.settings import Settings

log = logging.getLogger(__name__)


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
        "include_dashboard": False,
        "runtime_env": {"env_vars": {RUN_ID_ENV: current_run_id()}},
        "logging_level": logging.WARNING,
    }
    if not address:
        kwargs["num_cpus"] = settings.ray_num_cpus
    ray.init(**kwargs)
    resources = ray.cluster_resources()
    log.info("ray connected", extra={"address": address or "local", "cpus": resources.get("CPU")})
    try:
        yield
    finally:
        ray.shutdown()
