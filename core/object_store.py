"""Where the S3-compatible store behind ``s3://`` URIs is and how to sign in, the same in every process.

Two shapes: an external store (``CHURN_S3__ENDPOINT_URL`` or AWS's own ``AWS_ENDPOINT_URL``, keys
from AWS's credential chain), or the project's own SeaweedFS, whose endpoint and generated keys are
a file under ``<state_dir>/s3`` that ``churn services up --s3`` writes. pyarrow (every dataset
read and write, Ray Data, Ray Train's checkpoints) and boto3 (MLflow's artifacts) both take them
from the environment, so ``s3_env`` is what a process (or a Ray node) needs in it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings

CREDENTIALS_FILE = "credentials.json"
ENV_NAMES = ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_DEFAULT_REGION", "AWS_REGION")


def s3_dir(settings: Settings) -> Path:
    """The embedded S3 server's folder: its data, logs, identities and the credentials file."""
    return (Path(settings.state_dir) / "s3").absolute()


def embedded_credentials(settings: Settings) -> dict[str, str] | None:
    """``endpoint_url``, ``access_key_id`` and ``secret_access_key`` of the embedded server, once started."""
    try:
        found = json.loads((s3_dir(settings) / CREDENTIALS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return {k: str(found[k]) for k in ("endpoint_url", "access_key_id", "secret_access_key")}


def uses_embedded_s3(settings: Settings) -> bool:
    """True unless an external endpoint is configured: the settings', or AWS's variable naming another
    than the embedded server's (``get_settings`` exports that one)."""
    if settings.s3.endpoint_url:
        return False
    named = os.environ.get("AWS_ENDPOINT_URL")
    embedded = embedded_credentials(settings)
    return not named or (embedded is not None and named == embedded["endpoint_url"])


def s3_env(settings: Settings) -> dict[str, str]:
    """The variables pyarrow and boto3 read: the configured endpoint, or the embedded server's with its keys."""
    endpoint = settings.s3.endpoint_url
    env: dict[str, str] = {}
    if uses_embedded_s3(settings) and (embedded := embedded_credentials(settings)):
        endpoint = embedded["endpoint_url"]
        env |= {"AWS_ACCESS_KEY_ID": embedded["access_key_id"], "AWS_SECRET_ACCESS_KEY": embedded["secret_access_key"]}
    if not endpoint:
        return env
    return env | {"AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint,
                  "AWS_DEFAULT_REGION": settings.s3.region, "AWS_REGION": settings.s3.region}
