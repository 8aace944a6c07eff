"""Structured logging with a run id that follows a job across Ray workers.

Each log line is one JSON object: time, level, logger, run_id, message and any ``extra`` fields.
The run id comes from ``CHURN_RUN_ID`` (set by the job's driver and passed to Ray workers through
the runtime environment), so a job's lines can be grepped out of every worker's log.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid

RUN_ID_ENV = "CHURN_RUN_ID"
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def new_run_id(step: str) -> str:
    return f"{step}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def current_run_id() -> str:
    return os.environ.get(RUN_ID_ENV, "-")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "run_id": current_run_id(),
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(run_id: str | None = None, level: str | None = None) -> str:
    """Install the JSON formatter on the root logger; set and return the run id."""
    if run_id:
        os.environ[RUN_ID_ENV] = run_id
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("CHURN_LOG_LEVEL", "INFO"))
    for noisy in ("py4j", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return current_run_id()
