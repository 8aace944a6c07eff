"""The batch side of the online store on Redis: a load writes a new version's keys next to the
live ones, checks that the server holds all of them, then flips ``live`` (and ``previous``) in
one MULTI/EXEC; a load that fails before the flip leaves the live version untouched and its keys
are removed. Only the live and the previous version are kept."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import redis

from core.redis_target import redis_target
from core.settings import Settings
from features.feature_set import FeatureSet
from features.online.codec import mset_commands, pack_vectors
from features.online.interface import (
    FAILED,
    LIVE,
    LOADING,
    PREVIOUS,
    RETIRED,
    LoadIncomplete,
    NoLiveVersion,
    OnlineStore,
    OnlineStoreError,
    OnlineVersion,
)
from features.online.redis_layout import Keys, decoded, redis_client, version_from_meta

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

log = logging.getLogger(__name__)

STALE_LOAD_S = 3600.0  # a version still "loading" after this long was left by a crashed load
_SCAN_COUNT = 2_000  # keys per SCAN step while deleting a version: keeps each step well under 1 ms
_REPLICA_WAIT_MS = 5_000


class RedisOnlineStore(OnlineStore):
    """The batch side of the store on Redis (sync client; picklable settings, so Ray workers
    build their own)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.online
        self.keys = Keys(self.cfg.namespace)
        self.client = redis_client(settings)
        self.sentinels = bool(redis_target(settings).sentinels)

    def begin(self, features: FeatureSet, source: str) -> OnlineVersion:
        version = f"v{self.client.incr(self.keys.seq)}"
        meta: dict[FieldT, EncodableT] = {
            "features": json.dumps(features.to_json()), "schema_hash": features.schema_hash,
            "rows": 0, "source": source, "state": LOADING, "created_at": time.time(),
        }
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.meta(version), mapping=meta)
            pipe.sadd(self.keys.versions, version)
            pipe.execute()
        return version_from_meta(version, meta)

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
        self._wait_for_a_replica(version)
        return self._meta(version)

    def abort(self, version: str) -> None:
        self.client.hset(self.keys.meta(version), "state", FAILED)
        self._delete_version(version)

    def rollback(self) -> OnlineVersion:
        def swap(live: str | None, previous: str | None) -> tuple[str, str | None]:
            if previous is None:
                raise NoLiveVersion("no previous version to roll back to")
            return previous, live

        live, _ = self._swap(swap)
        return self._meta(live)

    def live(self) -> OnlineVersion | None:
        version = decoded(self.client.get(self.keys.live))
        return self._meta(version) if version else None

    def versions(self) -> list[OnlineVersion]:
        ids = [decoded(v) for v in self.client.smembers(self.keys.versions)]
        with self.client.pipeline(transaction=False) as pipe:
            for version in ids:
                pipe.hgetall(self.keys.meta(version))
            metas = pipe.execute()
        found = [version_from_meta(version, meta) for version, meta in zip(ids, metas) if meta]
        return sorted(found, key=lambda v: v.created_at)

    # ---------------------------------------------------------------- helpers
    def _wait_for_a_replica(self, version: str) -> None:
        """Behind Sentinels, return only once a replica holds the flip, so that a failover
        right after it keeps it; if none confirms in time, say so (the flip stands on the primary)."""
        if not self.sentinels:
            return
        confirmed = self.client.wait(1, _REPLICA_WAIT_MS)
        if not confirmed:
            log.warning("the flip is on the primary but no replica confirmed it: a failover now would lose it "
                        "(rerun `churn materialize`)", extra={"version": version, "waited_ms": _REPLICA_WAIT_MS})

    def _meta(self, version: str) -> OnlineVersion:
        meta = self.client.hgetall(self.keys.meta(version))
        if not meta:
            raise NoLiveVersion(f"online version {version} does not exist")
        return version_from_meta(version, meta)

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

    def _swap(self, decide: Callable[[str | None, str | None], tuple[str, str | None]]) -> tuple[str, str | None]:
        """Set (live, previous) to ``decide(live, previous)`` atomically (WATCH + MULTI/EXEC) and
        update the versions' states."""
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self.keys.live, self.keys.previous)
                    live, previous = (decoded(v) for v in pipe.mget(self.keys.live, self.keys.previous))
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
                        assert displaced is not None
                        pipe.hset(self.keys.meta(displaced), "state", RETIRED)
                    pipe.execute()
                    log.info("online version flipped", extra={"live": new_live, "previous": new_previous,
                                                              "was_live": live})
                    return new_live, new_previous
                except redis.WatchError:
                    continue

    def prune_old_versions(self) -> list[str]:
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
