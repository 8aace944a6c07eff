"""Filesystem access by URI (local paths and ``s3://``) through pyarrow filesystems.

Outputs are written atomically: into a temporary sibling first, then renamed into place, so a
reader never sees a half-written file or folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow.fs as pafs


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Filesystem and path inside it for a local path or a URI such as ``s3://bucket/key``."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    return pafs.FileSystem.from_uri(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *[p.strip("/") for p in parts]])


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_text(uri: str) -> str:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def read_json(uri: str) -> Any:
    return json.loads(read_text(uri))


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write a file through a temporary sibling and a rename."""
    fs, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)


def write_text_atomic(uri: str, text: str) -> None:
    write_bytes_atomic(uri, text.encode())


def write_json_atomic(uri: str, obj: Any) -> None:
    write_text_atomic(uri, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def remove_dir(uri: str) -> None:
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


@contextlib.contextmanager
def atomic_dir(uri: str, *, replace: bool = False) -> Iterator[str]:
    """Yield a temporary folder URI next to ``uri``; on success it is renamed to ``uri``.

    On failure the temporary folder is removed and ``uri`` is left as it was. An existing
    ``uri`` is an error unless ``replace`` is set (immutable outputs stay immutable).
    """
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound and not replace:
        raise FileExistsError(f"output already exists: {uri}")
    tmp_uri = f"{uri.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
    tmp_fs, tmp_path = resolve(tmp_uri)
    tmp_fs.create_dir(tmp_path, recursive=True)
    try:
        yield tmp_uri
    except BaseException:
        tmp_fs.delete_dir(tmp_path)
        raise
    if replace and fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
    fs.move(tmp_path, path)


def total_bytes(uri: str) -> int:
    """Size of a file, or of every file below a folder."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return info.size
    return sum(
        i.size for i in fs.get_file_info(pafs.FileSelector(path, recursive=True)) if i.type == pafs.FileType.File
    )
