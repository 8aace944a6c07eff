"""Where an output came from: a short fingerprint of its inputs (the id of a reusable output
folder) and the version of the code that made it."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any


def fingerprint(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts: equal inputs give the same output id."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def code_version() -> str:
    """``git describe`` of this checkout (``-dirty`` with uncommitted changes), read from the code's
    own folder so the working directory does not matter; "unknown" outside a checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], capture_output=True, text=True,
                             timeout=10, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
