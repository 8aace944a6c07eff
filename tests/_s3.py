"""A real S3 server for the tests: the project's SeaweedFS (``churn services up --s3``) on free ports."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from core.processes import free_port
from core.settings import Settings
from ray_jobs.supervisors.redis_process import ServiceError
from ray_jobs.supervisors.s3_server import ADMIN_GRPC_OFFSET, S3Server


@contextlib.contextmanager
def running_s3(state_dir: Path, **overrides) -> Iterator[S3Server]:
    """SeaweedFS under ``state_dir`` (its ten ports next to a free one), stopped afterwards."""
    for _ in range(20):
        port = free_port()
        if port > 65_535 - ADMIN_GRPC_OFFSET - 10:
            continue
        server = S3Server(Settings(state_dir=state_dir, redis_url=None, mlflow_tracking_uri=None,
                                   s3={"port": port}, **overrides))
        try:
            server.up()
            break
        except ServiceError as exc:
            if "taken" not in str(exc):
                raise
    try:
        yield server
    finally:
        server.down()
