"""The Redis key layout of the online store (see ``features.online``) and what the writer and
the reader share: key names, version metadata, the sync client."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import overload

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from core.redis_target import redis_target
from core.settings import Settings
from features.feature_set import FeatureSet
from features.online.interface import LIVE, PREVIOUS, OnlineVersion


class Keys:
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


def version_from_meta(version: str, meta: dict) -> OnlineVersion:
    text = {decoded(k): decoded(v) for k, v in meta.items()}
    return OnlineVersion(
        id=version, features=FeatureSet.from_json(json.loads(text["features"])), schema_hash=text["schema_hash"],
        rows=int(text.get("rows", 0)), source=text.get("source", ""), state=text.get("state", ""),
        created_at=float(text.get("created_at", 0)),
    )


@overload
def decoded(value: bytes | str) -> str: ...
@overload
def decoded(value: bytes | str | None) -> str | None: ...
def decoded(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def redis_client(settings: Settings, timeout_s: float = 30.0) -> redis.Redis:
    """A sync client of the primary, for loads and admin; behind Sentinels, each new connection
    goes to the primary they name now. No retries: a failed call fails the load, which is safe."""
    target = redis_target(settings)
    options = {"socket_timeout": timeout_s, "socket_connect_timeout": min(timeout_s, 5.0),
               "retry": Retry(NoBackoff(), 0)}
    if target.sentinels:
        asked = {"password": target.password, "socket_timeout": 2.0}
        sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=asked, password=target.password, db=target.db,
                            **options)
        return sentinel.master_for(target.master_name)
    assert target.url is not None
    return redis.Redis.from_url(target.url, **options)
