"""The serving side of the online store on Redis. Readers cache the live pointer for
``pointer_ttl_s`` and re-read it on a miss; a batch is always read from one version, never a mix."""
from __future__ import annotations

import time
from collections.abc import Sequence

from core.redis_target import redis_target
from core.settings import Settings
from features.online.codec import decode_rows
from features.online.interface import FeatureRows, NoLiveVersion, OnlineReader, OnlineVersion, StoreUnavailable
from features.online.pipelined_redis import PipelinedRedis, RedisCallError, Reply
from features.online.redis_layout import Keys, decoded, version_from_meta


class RedisOnlineReader(OnlineReader):
    """The serving side on Redis: one pipelined connection per reader (``PipelinedRedis``: every
    concurrent read shares it, the cheapest way to Redis from one event loop). Redis down fails
    fast (StoreUnavailable after one attempt to reconnect; the next read reconnects when Redis is
    back); a read that times out is tried once more on a fresh connection, since on a busy node a
    stalled moment (a fork, a starved process) is far more likely than a dead server."""

    def __init__(self, settings: Settings) -> None:
        cfg = settings.online
        self.keys = Keys(cfg.namespace)
        self.ttl_s = cfg.pointer_ttl_s
        self.client = PipelinedRedis(redis_target(settings), cfg.socket_timeout_s)
        self._live: OnlineVersion | None = None
        self._checked_at = 0.0
        self._metas: dict[str, OnlineVersion] = {}  # a version's metadata never changes but its state

    async def live(self, refresh: bool = False) -> OnlineVersion:
        if not refresh and self._live is not None and time.monotonic() - self._checked_at < self.ttl_s:
            return self._live
        version = decoded(await self._call("GET", self.keys.live))
        if version is None:
            raise NoLiveVersion("no online features yet: run `churn materialize`")
        if version not in self._metas:
            fields = await self._call("HGETALL", self.keys.meta(version))
            if not fields:
                raise NoLiveVersion(f"the live pointer names version {version}, which does not exist")
            meta = dict(zip(fields[::2], fields[1::2]))
            self._metas = {version: version_from_meta(version, meta)}  # keep one: versions come and go
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

    async def _mget(self, version: OnlineVersion, ids: Sequence[str]) -> list[bytes | None]:
        return await self._call("MGET", *self.keys.vectors(version.id, ids))

    async def _call(self, *args: str | bytes) -> Reply:
        try:
            return await self.client.execute(*args)
        except RedisCallError as exc:
            raise StoreUnavailable(f"feature store unreachable: {exc}") from exc
