"""Filesystem access by URI (local paths and ``s3://``) through pyarrow filesystems.

Outputs are written atomically: into a temporary sibling first, then renamed into place, so a
reader never sees a half-written file or folder. An object store has no folders to rename: there
the files are copied into place on the server, the completion marker last, and readers go by that
marker (``core.outputs``).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
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
    move_dir(fs, tmp_path, path)


def move_dir(fs: pafs.FileSystem, source: str, target: str) -> None:
    """Rename a folder; on an object store, copy each file server-side (``_``-files such as
    ``_SUCCESS`` last, so the marker never precedes the data) and then remove the source."""
    if isinstance(fs, pafs.LocalFileSystem):
        fs.move(source, target)
        return
    files = [i.path for i in fs.get_file_info(pafs.FileSelector(source, recursive=True))
             if i.type == pafs.FileType.File]
    for name in sorted(files, key=lambda p: (p.rsplit("/", 1)[-1].startswith("_"), p)):
        fs.copy_file(name, target + name[len(source):])
    fs.delete_dir(source)


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path holding ``uri`` (a file or a folder): ``uri`` itself when local, else a temporary download."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="churn-in-") as tmp:
        local = os.path.join(tmp, path.rstrip("/").rsplit("/", 1)[-1])
        pafs.copy_files(path, local, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        yield local


@contextlib.contextmanager
def local_output(uri: str) -> Iterator[str]:
    """A local folder whose files end up under ``uri``: ``uri`` itself when local, else uploaded on success."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        os.makedirs(path, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="churn-out-") as tmp:
        yield tmp
        pafs.copy_files(tmp, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def total_bytes(uri: str) -> int:
    """Size of a file, or of every file below a folder."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return info.size
    return sum(
        i.size for i in fs.get_file_info(pafs.FileSelector(path, recursive=True)) if i.type == pafs.FileType.File
    )
