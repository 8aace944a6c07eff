"""An asyncio Redis client for the serving hot path: one connection per client, every command
pipelined on it.

Why not redis-py's asyncio client: each command checks a connection out of a pool (locks, a
``wait_for`` per read) and parses the reply in Python, several times the CPU of this client per
read. Commands issued in the same event-loop iteration leave in one write; Redis answers a
connection's commands in order, so each caller waits on a future in a FIFO and hiredis parses
the replies.

Failures: a refused or lost connection fails every pending command with ``ConnectionError`` and
the next command connects again; a command unanswered after ``timeout_s`` means the server (or
the connection) stalled, not that one command is slow, since they all share it: the connection is
dropped, what was pending fails with ``TimeoutError``, and each is tried once more on a fresh
connection, as is a command whose connection was lost. Error replies raise ``RedisReplyError``.
All three are ``OSError`` or ``RedisReplyError``: ``RedisCallError`` catches them.
"""
from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import hiredis
from redis.connection import parse_url

from core.redis_target import RedisTarget

Reply = Any  # bytes, int, None or a list of them, as hiredis parses them


class RedisReplyError(RuntimeError):
    """Redis answered with an error (WRONGPASS, NOAUTH, WRONGTYPE...)."""


RedisCallError = (OSError, RedisReplyError)  # what a command can raise (ConnectionError, TimeoutError are OSErrors)


class _Connection(asyncio.Protocol):
    """One connection: commands buffered until the end of the loop iteration, replies matched
    to callers in order, and a watchdog on the oldest unanswered command."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.closed = False
        self._parser = hiredis.Reader()
        self._pending: deque[tuple[asyncio.Future, float]] = deque()  # (reply, deadline)
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._failure: OSError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def send(self, args: tuple) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        self._pending.append((reply, loop.time() + self.timeout_s))
        self._outgoing.append(hiredis.pack_command(args))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout_s, self._check_stalled)
        return reply

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            while (reply := self._parser.gets()) is not False:
                waiter, _ = self._pending.popleft()
                if waiter.done():  # its caller gave up (cancelled)
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    waiter.set_exception(RedisReplyError(str(reply)))
                else:
                    waiter.set_result(reply)
        except hiredis.ProtocolError as exc:
            self._drop(ConnectionError(f"unreadable reply from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        failure = self._failure or ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}")
        while self._pending:
            waiter, _ = self._pending.popleft()
            if not waiter.done():
                waiter.set_exception(failure)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self.closed and self._transport is not None:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _check_stalled(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        deadline = self._pending[0][1]
        if loop.time() >= deadline:
            self._drop(TimeoutError(f"no reply from Redis within {self.timeout_s:g} s"))
        else:
            self._watchdog = loop.call_later(deadline - loop.time(), self._check_stalled)

    def _drop(self, failure: OSError) -> None:
        self._failure = failure
        self.closed = True
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails the pending commands with `failure`


class PipelinedRedis:
    """``await client.execute("MGET", k1, k2)``: the reply as hiredis parses it (bytes, not str).

    One server is given as a redis://, rediss:// or unix:// URL as redis-py reads them (user,
    password, db). Behind Sentinels, a connection goes to the primary they name or, when that one
    does not answer (the seconds before a failover promotes a replica), to a replica they list:
    the client only reads, and a replica applies the primary's writes in their order, so what it
    serves is an older state, never a mix."""

    def __init__(self, target: RedisTarget, timeout_s: float) -> None:
        self.target = target
        self._params: dict[str, Any] = (parse_url(target.url) if target.url
                                        else {"password": target.password, "db": target.db})
        self._tls = bool(target.url and target.url.startswith("rediss://"))
        self.timeout_s = timeout_s
        self._connection: _Connection | None = None
        self._opening: asyncio.Task[_Connection] | None = None

    async def execute(self, *args: Any) -> Reply:
        """Send one command; a timeout or a lost connection is tried once more on a fresh
        connection (the commands are reads: repeating one is harmless)."""
        try:
            return await (await self._connected()).send(args)
        except (TimeoutError, ConnectionError):
            return await (await self._connected()).send(args)

    async def close(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        if self._connection is not None:
            self._connection.close()

    async def _connected(self) -> _Connection:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        if self._opening is None or self._opening.done():  # one attempt at a time; callers share it
            self._opening = asyncio.get_running_loop().create_task(self._open())
        self._connection = await asyncio.shield(self._opening)
        return self._connection

    async def _open(self) -> _Connection:
        if "path" in self._params:
            return await self._login(await self._connect_unix(self._params["path"]))
        failures = []
        for host, port in await self._servers():
            try:
                return await self._login(await self._connect(host, port, tls=self._tls))
            except ConnectionError as exc:
                failures.append(str(exc))
        raise ConnectionError("; ".join(failures))

    async def _servers(self) -> list[tuple[str, int]]:
        """Where to connect, in order: the one server, or the Sentinels' primary then replicas."""
        if not self.target.sentinels:
            return [(self._params.get("host", "localhost"), self._params.get("port", 6379))]
        failures = []
        for host, port in self.target.sentinels:
            try:
                sentinel = await self._login(await self._connect(host, port, tls=False), select_db=False)
            except (ConnectionError, RedisReplyError) as exc:
                failures.append(f"Sentinel {host}:{port}: {exc}")
                continue
            try:
                name = self.target.master_name
                primary = await sentinel.send(("SENTINEL", "get-master-addr-by-name", name))
                replicas = await sentinel.send(("SENTINEL", "replicas", name))
            except RedisCallError as exc:
                failures.append(f"Sentinel {host}:{port}: {exc}")
                continue
            finally:
                sentinel.close()
            found = [(primary[0].decode(), int(primary[1]))] if primary else []
            return found + [address for address in map(_healthy_replica, replicas) if address]
        raise ConnectionError("no Sentinel answers: " + "; ".join(failures))

    async def _connect(self, host: str, port: int, tls: bool) -> _Connection:
        loop = asyncio.get_running_loop()
        opening = loop.create_connection(lambda: _Connection(self.timeout_s), host, port,
                                         ssl=_tls_context(self._params) if tls else None)
        return await self._connected_by(opening, f"{host}:{port}")

    async def _connect_unix(self, path: str) -> _Connection:
        opening = asyncio.get_running_loop().create_unix_connection(lambda: _Connection(self.timeout_s), path)
        return await self._connected_by(opening, path)

    async def _connected_by(self, opening: Any, where: str) -> _Connection:
        try:
            _, connection = await asyncio.wait_for(opening, self.timeout_s)
        except OSError as exc:  # refused, unreachable, timed out
            raise ConnectionError(f"cannot connect to Redis at {where}: {exc or type(exc).__name__}") from exc
        return connection

    async def _login(self, connection: _Connection, select_db: bool = True) -> _Connection:
        params = self._params
        try:
            if params.get("password"):
                await connection.send(("AUTH", *filter(None, (params.get("username"), params["password"]))))
            if select_db and params.get("db"):
                await connection.send(("SELECT", params["db"]))
        except BaseException:
            connection.close()
            raise
        return connection


def _healthy_replica(fields: list[bytes]) -> tuple[str, int] | None:
    """A replica's address from ``SENTINEL replicas``, unless Sentinel cannot reach it. (One that
    lost its primary still serves what it has: that is the point of reading it.)"""
    info = dict(zip(fields[::2], fields[1::2]))
    flags = set(info.get(b"flags", b"").decode().split(","))
    if flags & {"s_down", "o_down", "disconnected"}:
        return None
    return info[b"ip"].decode(), int(info[b"port"])


def _tls_context(params: dict) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
    if params.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
