"""A lean, multiplexed Redis connection for the API's one read per request.

A slate-served recommendation is one MGET; through redis-py's asyncio client that MGET
cost ~125 µs of the API's CPU (connection pool, retry wrapper, observability hooks,
stream reader), more than decoding and filtering the slate. This connection writes each
command as it comes and matches replies in order (Redis answers one connection's
commands in order), parsed by hiredis, as redis-py's own parser does: ~50 µs. It carries
only reads that are safe to fail: any error (a lost connection, a timeout) fails the
calls in flight with redis-py's exceptions, and the next call reconnects.

Single Redis only (``redis://`` and ``rediss://``); a Cluster URL keeps redis-py
(:func:`lean_reader` returns None and the caller uses its client).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from currents.redis_client import is_cluster_url


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            future = self.waiting.popleft()
            if future.done():  # timed out meanwhile
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ResponseError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.fail(RedisConnectionError("connection to Redis lost"))

    def fail(self, error: Exception) -> None:
        self.lost = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def send(self, args: Sequence[Any]) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        assert self.transport is not None
        self.transport.write(hiredis.pack_command(tuple(args)))
        return future


class LeanReader:
    """``await reader.mget(keys)``: values or None, as redis-py's ``mget`` returns them."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.ssl_context = ssl_context
        self.timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self.call("MGET", *keys)

    async def call(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connect()
        future = protocol.send(args)
        timer = asyncio.get_running_loop().call_later(self.timeout_s, self._expire, protocol)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, protocol: _Protocol) -> None:
        # The oldest call has waited the whole timeout: Redis is stuck or away. Everything
        # in flight fails and the next call starts on a new connection.
        protocol.fail(RedisTimeoutError("Redis did not answer in time"))

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.lost:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        _Protocol,
                        self.host,
                        self.port,
                        ssl=self.ssl_context,
                        server_hostname=self.host if self.ssl_context else None,
                    ),
                    self.timeout_s,
                )
            except (OSError, TimeoutError) as error:
                raise RedisConnectionError(f"cannot reach Redis: {error}") from error
            setup: list[tuple[Any, ...]] = []
            if self.password is not None:
                user = (self.username,) if self.username else ()
                setup.append(("AUTH", *user, self.password))
            if self.db:
                setup.append(("SELECT", self.db))
            try:
                for command in setup:
                    await asyncio.wait_for(protocol.send(command), self.timeout_s)
            except BaseException:
                protocol.fail(RedisConnectionError("Redis connection set-up failed"))
                raise
            self._protocol = protocol
            return protocol

    async def aclose(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("reader closed"))
            self._protocol = None


def ssl_context(tls: dict[str, Any]) -> ssl.SSLContext:
    """An SSL context from redis-py's ``ssl_*`` arguments (``redis_client.tls_options``):
    the server's certificate is always verified."""
    context = ssl.create_default_context(cafile=tls.get("ssl_ca_certs"))
    context.check_hostname = bool(tls.get("ssl_check_hostname", True))
    if tls.get("ssl_certfile"):
        context.load_cert_chain(tls["ssl_certfile"], tls.get("ssl_keyfile"))
    return context


def lean_reader(url: str, tls: dict[str, Any], timeout_s: float = 2.0) -> LeanReader | None:
    """A :class:`LeanReader` for a single Redis at ``url``; None for a Cluster or a
    Unix socket (the caller keeps redis-py for those)."""
    parts = urlsplit(url)
    if is_cluster_url(url) or parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        return None
    path = parts.path.strip("/")
    return LeanReader(
        parts.hostname,
        parts.port or 6379,
        db=int(path) if path else 0,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl_context=ssl_context(tls) if parts.scheme == "rediss" else None,
        timeout_s=timeout_s,
    )
