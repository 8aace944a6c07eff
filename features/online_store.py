"""The online feature store: every customer's latest feature vector, one read per customer.

A small interface (``OnlineStore`` to load and publish versions, ``OnlineReader`` to serve) with a
Redis implementation. Layout under the namespace ``ns`` (``churn:fv`` by default)::

    {ns}:live             id of the live version: the one pointer readers follow
    {ns}:previous         id of the version before it, kept for rollback
    {ns}:seq              counter numbering the versions
    {ns}:meta:{v}         hash: schema_hash, features (FeatureSet JSON), rows, source, state, created_at
    {ns}:count:{v}        rows the server confirmed for version v
    {ns}:{v}:{customer}   4-byte schema tag + the features as little-endian float32, FeatureSet order

A vector is 4 + 4 x features bytes (244 for 60 features): a packed vector per customer is read with
one GET (one MGET for a batch) and decoded with one ``np.frombuffer``. Its tag (the first bytes of
the FeatureSet's ``schema_hash``) is checked on every read, so a vector is never decoded with a
layout it was not written with.

A load writes a new version's keys next to the live ones, checks that the server holds all of
them, then flips ``live`` (and ``previous``) in one MULTI/EXEC; a load that fails before the flip
leaves the live version untouched and its keys are removed. Only the live and the previous
version are kept. Readers cache the pointer for ``pointer_ttl_s`` and re-read it on a miss; a batch
is always read from one version, never a mix.
"""
from __future__ import annotations

import abc
import json
import logging
import time
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from features.feature_set import FeatureSet
from features.pipelined_redis import PipelinedRedis, RedisCallError, Reply
from ray_jobs.settings import Settings

log = logging.getLogger(__name__)

LIVE, PREVIOUS = "live", "previous"
LOADING, FAILED, RETIRED = "loading", "failed", "retired"
TAG_BYTES = 4
STALE_LOAD_S = 3600.0  # a version still "loading" after this long was left by a crashed load
_SCAN_COUNT = 2_000  # keys per SCAN step while deleting a version: keeps each step well under 1 ms


class OnlineStoreError(RuntimeError):
    """Base of the online store's errors."""


class StoreUnavailable(OnlineStoreError):
    """The store cannot be reached (Redis down, timeout, auth)."""


class NoLiveVersion(OnlineStoreError):
    """Nothing was materialised yet (or the pointer names a version that is gone)."""


class SchemaMismatch(OnlineStoreError):
    """Stored vectors have another layout than the reader expects."""


class LoadIncomplete(OnlineStoreError):
    """A version holds fewer (or other) rows than the load wrote: it is not published."""


@dataclass(frozen=True)
class OnlineVersion:
    """One materialised version: its id, layout and where it came from."""

    id: str
    features: FeatureSet
    schema_hash: str
    rows: int
    source: str
    state: str
    created_at: float

    @property
    def tag(self) -> int:
        return schema_tag(self.schema_hash)

    def summary(self) -> dict:
        return {"version": self.id, "schema_hash": self.schema_hash, "rows": self.rows, "source": self.source,
                "state": self.state, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at))}


@dataclass(frozen=True)
class FeatureRows:
    """Vectors of the ids asked for, in order: ``found[i]`` is False for an unknown customer
    (its row is all NaN)."""

    version: OnlineVersion
    values: np.ndarray  # (n, features) float32
    found: np.ndarray  # (n,) bool


# ------------------------------------------------------------------------------- encoding
def schema_tag(schema_hash: str) -> int:
    """The 32-bit tag written in front of every vector of a layout."""
    return int.from_bytes(bytes.fromhex(schema_hash[: 2 * TAG_BYTES]), "little")


def pack_vectors(tag: int, values: np.ndarray) -> np.ndarray:
    """Packed vectors of the rows of ``values``: one row of bytes each (tag + float32 values)."""
    n, width = values.shape
    block = np.empty((n, width + 1), dtype="<f4")
    block[:, 0] = np.array(tag, dtype="<u4").view("<f4")
    block[:, 1:] = values
    return block.view(np.uint8)


def encode_rows(tag: int, values: np.ndarray) -> list[bytes]:
    """Packed vectors as bytes objects, one per row."""
    return [row.tobytes() for row in pack_vectors(tag, values)]


def decode_rows(raw: Sequence[Optional[bytes]], tag: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, found) from packed vectors, ``None`` for a missing key; raises SchemaMismatch
    when a vector is not of layout ``tag`` with ``width`` features."""
    if None not in raw:  # the serving case: every customer known, no per-row work in Python
        return _unpack(raw, tag, width).copy(), np.ones(len(raw), dtype=bool)
    found = np.fromiter((v is not None for v in raw), dtype=bool, count=len(raw))
    values = np.full((len(raw), width), np.nan, dtype=np.float32)
    present = [v for v in raw if v is not None]
    if present:
        values[found] = _unpack(present, tag, width)
    return values, found


def _unpack(raw: Sequence[bytes], tag: int, width: int) -> np.ndarray:
    """The values of packed vectors (a read-only view), after checking their length and tag."""
    if set(map(len, raw)) != {(width + 1) * 4}:
        raise SchemaMismatch(f"stored vectors are not {width} float32 features long")
    block = np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), width + 1)
    if np.any(block[:, 0].view("<u4") != tag):
        raise SchemaMismatch("stored vectors carry another schema tag than the version's layout")
    return block[:, 1:]


def mset_commands(keys: Sequence[bytes], vectors: np.ndarray, rows_per_command: int) -> list[bytes]:
    """MSETs of ``keys`` -> rows of ``vectors`` (uint8, one packed vector per row) in Redis'
    protocol, built directly: for keys of one length (the usual case) as one numpy array, with no
    Python work per key; otherwise key by key."""
    starts = range(0, len(keys), rows_per_command)
    if len(set(map(len, keys))) == 1:
        rows = _bulk_pairs(np.array(keys), vectors)
        bodies = [rows[i:i + rows_per_command].tobytes() for i in starts]
    else:
        pairs = [b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, v.size, v.tobytes()) for k, v in zip(keys, vectors)]
        bodies = [b"".join(pairs[i:i + rows_per_command]) for i in starts]
    counts = [min(rows_per_command, len(keys) - i) for i in starts]
    return [b"*%d\r\n$4\r\nMSET\r\n" % (2 * n + 1) + body for n, body in zip(counts, bodies)]


def _bulk_pairs(keys: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Rows of ``$<klen>\\r\\n<key>\\r\\n$<vlen>\\r\\n<vector>\\r\\n`` as a uint8 array (keys of one length)."""
    n, key_len, vec_len = len(keys), keys.dtype.itemsize, vectors.shape[1]
    pieces = [b"$%d\r\n" % key_len, keys.view(np.uint8).reshape(n, key_len), b"\r\n$%d\r\n" % vec_len,
              vectors, b"\r\n"]
    widths = [p.shape[1] if isinstance(p, np.ndarray) else len(p) for p in pieces]
    out = np.empty((n, sum(widths)), dtype=np.uint8)
    at = 0
    for piece, width in zip(pieces, widths):
        out[:, at:at + width] = piece if isinstance(piece, np.ndarray) else np.frombuffer(piece, np.uint8)
        at += width
    return out


# ------------------------------------------------------------------------------- interface
class OnlineStore(abc.ABC):
    """Load, publish and roll back versions (the batch side)."""

    @abc.abstractmethod
    def begin(self, features: FeatureSet, source: str) -> OnlineVersion:
        """Register a new version in state ``loading``; readers do not see it yet."""

    @abc.abstractmethod
    def put_many(self, version: str, ids: Sequence[str], values: np.ndarray) -> int:
        """Write the vectors of ``ids`` (rows of ``values``) into ``version``; returns rows written."""

    @abc.abstractmethod
    def flip(self, version: str, expected_rows: int, sample_ids: Sequence[str] = ()) -> OnlineVersion:
        """Check ``version`` is complete, make it live in one step and keep the old one as previous."""

    @abc.abstractmethod
    def collect(self) -> list[str]:
        """Remove the versions that are neither live nor previous (nor a load still running);
        returns their ids. Separate from ``flip``: removing a million keys gently takes seconds,
        and the new version is live meanwhile."""

    @abc.abstractmethod
    def abort(self, version: str) -> None:
        """Drop a version that will not be published."""

    @abc.abstractmethod
    def rollback(self) -> OnlineVersion:
        """Make the previous version live again (the current one becomes previous)."""

    @abc.abstractmethod
    def live(self) -> Optional[OnlineVersion]:
        """The live version, or None before the first load."""

    @abc.abstractmethod
    def versions(self) -> list[OnlineVersion]:
        """Every version the store holds, oldest first."""


class OnlineReader(abc.ABC):
    """Serving side: async reads of the live version."""

    @abc.abstractmethod
    async def live(self, refresh: bool = False) -> OnlineVersion:
        """The live version (cached briefly); raises NoLiveVersion or StoreUnavailable."""

    @abc.abstractmethod
    async def get_many(self, ids: Sequence[str]) -> FeatureRows:
        """The vectors of ``ids`` from one version, in one round trip."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


# ------------------------------------------------------------------------------- Redis
class _Keys:
    """Key names of one namespace."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.live = f"{namespace}:{LIVE}"
        self.previous = f"{namespace}:{PREVIOUS}"
        self.seq = f"{namespace}:seq"
        self.versions = f"{namespace}:versions"  # a set of every version id with a meta hash

    def meta(self, version: str) -> str:
        return f"{self.ns}:meta:{version}"

    def count(self, version: str) -> str:
        return f"{self.ns}:count:{version}"

    def prefix(self, version: str) -> bytes:
        return f"{self.ns}:{version}:".encode()

    def vectors(self, version: str, ids: Iterable[str]) -> list[bytes]:
        prefix = self.prefix(version)
        return [prefix + i.encode() for i in ids]


def _version_from_meta(version: str, meta: dict) -> OnlineVersion:
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in meta.items()}
    return OnlineVersion(
        id=version, features=FeatureSet.from_json(json.loads(text["features"])), schema_hash=text["schema_hash"],
        rows=int(text.get("rows", 0)), source=text.get("source", ""), state=text.get("state", ""),
        created_at=float(text.get("created_at", 0)),
    )


def _decoded(value: Optional[bytes | str]) -> Optional[str]:
    return value.decode() if isinstance(value, bytes) else value


def redis_client(settings: Settings, timeout_s: float = 30.0) -> redis.Redis:
    """A sync client for loads and admin. No retries: a failed call fails the load, which is safe."""
    return redis.Redis.from_url(settings.effective_redis_url, socket_timeout=timeout_s,
                                socket_connect_timeout=min(timeout_s, 5.0), retry=Retry(NoBackoff(), 0))


class RedisOnlineStore(OnlineStore):
    """The batch side of the store on Redis (sync client; picklable settings, so Ray workers
    build their own)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.online
        self.keys = _Keys(self.cfg.namespace)
        self.client = redis_client(settings)

    def begin(self, features: FeatureSet, source: str) -> OnlineVersion:
        version = f"v{self.client.incr(self.keys.seq)}"
        meta = {"features": json.dumps(features.to_json()), "schema_hash": features.schema_hash,
                "rows": 0, "source": source, "state": LOADING, "created_at": time.time()}
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.meta(version), mapping=meta).sadd(self.keys.versions, version).execute()
        return _version_from_meta(version, meta)

    def put_many(self, version: str, ids: Sequence[str], values: np.ndarray) -> int:
        meta = self._meta(version)
        if values.shape != (len(ids), len(meta.features)):
            raise ValueError(f"expected {len(ids)} x {len(meta.features)} values, got {values.shape}")
        keys = self.keys.vectors(version, ids)
        self._send_pipelined(mset_commands(keys, pack_vectors(meta.tag, values), self.cfg.write_batch_rows))
        self.client.incrby(self.keys.count(version), len(keys))
        return len(keys)

    def flip(self, version: str, expected_rows: int, sample_ids: Sequence[str] = ()) -> OnlineVersion:
        meta = self._meta(version)
        if meta.state != LOADING:
            raise LoadIncomplete(f"version {version} is {meta.state}, not a finished load")
        written = int(self.client.get(self.keys.count(version)) or 0)
        if written != expected_rows:
            raise LoadIncomplete(f"version {version}: {written} rows confirmed, {expected_rows} expected")
        if sample_ids:
            present = self.client.exists(*self.keys.vectors(version, sample_ids))
            if present != len(set(sample_ids)):
                raise LoadIncomplete(f"version {version}: {len(sample_ids) - present} of {len(sample_ids)} "
                                     "sampled customers missing (evicted? check maxmemory)")
        self.client.hset(self.keys.meta(version), "rows", written)
        self._swap(lambda live, previous: (version, live))
        return self._meta(version)

    def abort(self, version: str) -> None:
        self.client.hset(self.keys.meta(version), "state", FAILED)
        self._delete_version(version)

    def rollback(self) -> OnlineVersion:
        def swap(live: Optional[str], previous: Optional[str]) -> tuple[str, Optional[str]]:
            if previous is None:
                raise NoLiveVersion("no previous version to roll back to")
            return previous, live

        live, _ = self._swap(swap)
        return self._meta(live)

    def live(self) -> Optional[OnlineVersion]:
        version = _decoded(self.client.get(self.keys.live))
        return self._meta(version) if version else None

    def versions(self) -> list[OnlineVersion]:
        ids = [_decoded(v) for v in self.client.smembers(self.keys.versions)]
        with self.client.pipeline(transaction=False) as pipe:
            for version in ids:
                pipe.hgetall(self.keys.meta(version))
            metas = pipe.execute()
        found = [_version_from_meta(version, meta) for version, meta in zip(ids, metas) if meta]
        return sorted(found, key=lambda v: v.created_at)

    # ---------------------------------------------------------------- helpers
    def _meta(self, version: str) -> OnlineVersion:
        meta = self.client.hgetall(self.keys.meta(version))
        if not meta:
            raise NoLiveVersion(f"online version {version} does not exist")
        return _version_from_meta(version, meta)

    def _send_pipelined(self, commands: list[bytes]) -> None:
        """Send every command, then read every reply (Redis answers in order)."""
        conn = self.client.connection_pool.get_connection()
        try:
            conn.send_packed_command(commands)
            errors = []
            for _ in commands:
                try:
                    conn.read_response()
                except redis.ResponseError as exc:  # keep reading: the replies of the rest follow
                    errors.append(exc)
            if errors:
                raise OnlineStoreError(f"{len(errors)} of {len(commands)} writes failed: {errors[0]}")
        except BaseException:
            conn.disconnect()  # replies may still be in flight: never reuse this connection
            raise
        finally:
            self.client.connection_pool.release(conn)

    def _swap(self, decide) -> tuple[str, Optional[str]]:
        """Set (live, previous) to ``decide(live, previous)`` atomically (WATCH + MULTI/EXEC) and
        update the versions' states."""
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self.keys.live, self.keys.previous)
                    live, previous = (_decoded(v) for v in pipe.mget(self.keys.live, self.keys.previous))
                    new_live, new_previous = decide(live, previous)
                    pipe.multi()
                    pipe.set(self.keys.live, new_live)
                    pipe.hset(self.keys.meta(new_live), "state", LIVE)
                    if new_previous:
                        pipe.set(self.keys.previous, new_previous)
                        pipe.hset(self.keys.meta(new_previous), "state", PREVIOUS)
                    else:
                        pipe.delete(self.keys.previous)
                    for displaced in {live, previous} - {new_live, new_previous, None}:
                        pipe.hset(self.keys.meta(displaced), "state", RETIRED)
                    pipe.execute()
                    log.info("online version flipped", extra={"live": new_live, "previous": new_previous,
                                                              "was_live": live})
                    return new_live, new_previous
                except redis.WatchError:
                    continue

    def collect(self) -> list[str]:
        now = time.time()
        removed = []
        for version in self.versions():
            if version.state in (LIVE, PREVIOUS):
                continue
            if version.state == LOADING and now - version.created_at < STALE_LOAD_S:
                continue
            self._delete_version(version.id)
            removed.append(version.id)
        return removed

    def _delete_version(self, version: str) -> None:
        removed = 0
        match = self.keys.prefix(version) + b"*"
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=match, count=_SCAN_COUNT):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                removed += self.client.unlink(*batch)
                batch.clear()
        if batch:
            removed += self.client.unlink(*batch)
        self.client.unlink(self.keys.meta(version), self.keys.count(version))
        self.client.srem(self.keys.versions, version)
        log.info("online version removed", extra={"version": version, "keys": removed})


class RedisOnlineReader(OnlineReader):
    """The serving side on Redis: one pipelined connection per reader (``PipelinedRedis``: every
    concurrent read shares it, the cheapest way to Redis from one event loop). Redis down fails
    fast (StoreUnavailable, no retry; the next read reconnects when Redis is back); a read that
    times out is tried once more on a fresh connection, since on a busy node a stalled moment
    (a fork, a starved process) is far more likely than a dead server."""

    def __init__(self, settings: Settings) -> None:
        cfg = settings.online
        self.keys = _Keys(cfg.namespace)
        self.ttl_s = cfg.pointer_ttl_s
        self.client = PipelinedRedis(settings.effective_redis_url, cfg.socket_timeout_s)
        self._live: Optional[OnlineVersion] = None
        self._checked_at = 0.0
        self._metas: dict[str, OnlineVersion] = {}  # a version's metadata never changes but its state

    async def live(self, refresh: bool = False) -> OnlineVersion:
        if not refresh and self._live is not None and time.monotonic() - self._checked_at < self.ttl_s:
            return self._live
        version = _decoded(await self._call("GET", self.keys.live))
        if version is None:
            raise NoLiveVersion("no online features yet: run `churn materialize`")
        if version not in self._metas:
            fields = await self._call("HGETALL", self.keys.meta(version))
            if not fields:
                raise NoLiveVersion(f"the live pointer names version {version}, which does not exist")
            meta = dict(zip(fields[::2], fields[1::2]))
            self._metas = {version: _version_from_meta(version, meta)}  # keep one: versions come and go
        self._live, self._checked_at = self._metas[version], time.monotonic()
        return self._live

    async def get_many(self, ids: Sequence[str]) -> FeatureRows:
        version = await self.live()
        raw = await self._mget(version, ids)
        if any(v is None for v in raw):  # maybe the pointer moved and our version is gone: look again
            latest = await self.live(refresh=True)
            if latest.id != version.id:
                version, raw = latest, await self._mget(latest, ids)
        values, found = decode_rows(raw, version.tag, len(version.features))
        return FeatureRows(version, values, found)

    async def ping(self) -> None:
        await self._call("PING")

    async def close(self) -> None:
        await self.client.close()

    async def _mget(self, version: OnlineVersion, ids: Sequence[str]) -> list[Optional[bytes]]:
        return await self._call("MGET", *self.keys.vectors(version.id, ids))

    async def _call(self, *args: str | bytes) -> Reply:
        try:
            return await self.client.execute(*args)
        except RedisCallError as exc:
            raise StoreUnavailable(f"feature store unreachable: {exc}") from exc
