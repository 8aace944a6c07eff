"""Where the online store's Redis is and how to log in, resolved the same way in every process.

Three shapes: an external server (``REDIS_URL``), the project's own server, or a primary found
through Sentinels (``CHURN_REDIS__SENTINELS``, or the embedded ones ``churn services up --ha``
started). The embedded Redis's password and Sentinel list are files under ``<state_dir>/redis``
that ``churn services up`` writes, so every process on the machine (steps, Ray workers, Serve
replicas) finds them without being told; a deployment passes them as variables instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.settings import Settings

PASSWORD_FILE = "password"
SENTINELS_FILE = "sentinels.json"


@dataclass(frozen=True)
class RedisTarget:
    """One server (``url``) or a primary named ``master_name`` that ``sentinels`` know."""

    url: str | None
    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    password: str | None
    db: int

    @classmethod
    def of_url(cls, url: str, master_name: str = "churn", db: int = 0) -> RedisTarget:
        return cls(url, (), master_name, None, db)

    @property
    def described(self) -> str:
        """Where it is, without the password."""
        if self.sentinels:
            return f"sentinel://{','.join(f'{h}:{p}' for h, p in self.sentinels)}/{self.master_name}"
        assert self.url is not None
        return redact_url(self.url)


def redis_dir(settings: Settings) -> Path:
    """The embedded Redis's folder: configs, data, logs, the password."""
    return (Path(settings.state_dir) / "redis").absolute()


def redis_target(settings: Settings) -> RedisTarget:
    """The Redis this process should use, from the settings and the embedded services' files."""
    cfg = settings.redis
    password = embedded_password(settings)
    sentinels = cfg.sentinel_addresses or embedded_sentinels(settings)
    if sentinels:
        return RedisTarget(None, sentinels, cfg.master_name, password, cfg.db)
    if settings.redis_url:
        return RedisTarget.of_url(settings.redis_url, cfg.master_name, cfg.db)
    auth = f":{password}@" if password else ""
    return RedisTarget(f"redis://{auth}{cfg.host}:{cfg.port}/{cfg.db}", (), cfg.master_name, password, cfg.db)


def embedded_password(settings: Settings) -> str | None:
    """The password of the project's own Redis: the settings', else the one its first start generated."""
    if settings.redis.password is not None:
        return settings.redis.password
    return _read(redis_dir(settings) / PASSWORD_FILE)


def embedded_sentinels(settings: Settings) -> tuple[tuple[str, int], ...]:
    """The Sentinels of the embedded HA Redis while it runs (``churn services up --ha``), else none."""
    if settings.redis_url:
        return ()
    text = _read(redis_dir(settings) / SENTINELS_FILE)
    return tuple((h, int(p)) for h, p in json.loads(text)["sentinels"]) if text else ()


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def redact_url(url: str) -> str:
    """``url`` without its password (``redis://:pw@h:1/0`` -> ``redis://h:1/0``)."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
