"""Immutable, complete-or-absent output folders with a LATEST pointer: feature snapshots and the
batch outputs (scores, campaigns, drift reports).

Layout under a root such as ``<data>/scores/``::

    <output-id>/...     written in a temporary sibling, ``_SUCCESS`` last, then renamed into place
    LATEST              the newest complete output, updated after it is complete

Output ids are fingerprints of the inputs, so re-running with identical inputs finds the complete
folder and reuses it instead of recomputing (``force`` recomputes and replaces it atomically).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import storage

log = logging.getLogger(__name__)
LATEST, SUCCESS = "LATEST", "_SUCCESS"


class OutputNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Output:
    id: str
    uri: str
    built: bool
    """False when a complete output with this id was found and reused."""


def is_complete(uri: str) -> bool:
    return storage.exists(storage.join(uri, SUCCESS))


def publish(root: str, output_id: str, write: Callable[[str], None], force: bool = False,
            latest: bool = True) -> Output:
    """Build ``root/output_id`` with ``write(tmp_uri)`` unless it is already complete, then point
    LATEST at it (unless ``latest`` is False: an auxiliary output). A crash inside ``write`` leaves
    neither the folder nor LATEST changed."""
    uri = storage.join(root, output_id)
    built = force or not is_complete(uri)
    if built:
        # replace: a folder without _SUCCESS is the debris of an interrupted move (or --force)
        with storage.atomic_dir(uri, replace=True) as tmp:
            write(tmp)
            storage.write_text_atomic(storage.join(tmp, SUCCESS), "")
    else:
        log.info("output already complete, reused", extra={"output": output_id, "uri": uri})
    if latest:
        storage.write_text_atomic(storage.join(root, LATEST), output_id + "\n")
    return Output(output_id, uri, built)


def publish_summarised(root: str, output_id: str, write: Callable[[str], dict[str, Any]], summary_name: str,
                       force: bool = False, latest: bool = True) -> tuple[Output, dict[str, Any]]:
    """``publish`` where ``write(tmp_uri)`` returns the output's summary, stored in it as
    ``summary_name``; the summary of a reused output is read back from there."""
    summary: dict[str, Any] = {}

    def write_with_summary(tmp: str) -> None:
        summary.update(write(tmp))
        storage.write_json_atomic(storage.join(tmp, summary_name), summary)

    output = publish(root, output_id, write_with_summary, force, latest)
    return output, summary if output.built else storage.read_json(storage.join(output.uri, summary_name))


def resolve(root: str, ref: str, what: str, hint: str = "") -> Output:
    """A complete output by id, by ``latest`` or by full URI."""
    if ref == "latest":
        pointer = storage.join(root, LATEST)
        if not storage.exists(pointer):
            raise OutputNotFound(f"no {what} yet under {root}{hint}")
        ref = storage.read_text(pointer).strip()
    uri = ref if "/" in ref else storage.join(root, ref)
    if not is_complete(uri):
        raise OutputNotFound(f"{what} '{ref}' not found or incomplete (no {SUCCESS}) at {uri}")
    return Output(uri.rstrip("/").rsplit("/", 1)[-1], uri, built=False)
