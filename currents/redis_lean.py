"""A lean, multiplexed Redis connection for the API's hottest route.

A slate-served recommendation is one MGET; through redis-py's asyncio client that MGET
cost ~125 µs of the API's CPU (connection pool, retry wrapper, observability hooks,
stream reader), more than decoding and filtering the slate. This connection queues each
command as it comes, writes everything queued in one loop iteration with one send (the
requests of a busy process share a syscall, Redis pipelines them), and matches replies
in order (Redis answers one connection's commands in order), parsed by hiredis as
redis-py's own parser does.

It carries only what is safe to fail: the request's read, and the writes the route
makes best-effort anyway (served-list records, slate refresh requests). Any error (a
lost connection, a timeout) fails the calls in flight with redis-py's exceptions, and
the next call reconnects.

Single Redis only (``redis://`` and ``rediss://``); a Cluster URL keeps redis-py
(:func:`lean_connection` returns None and the caller uses its client).
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

from currents.redis_client import AsyncRedis, is_cluster_url


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout_s: float = 2.0) -> None:
        self.reader = hiredis.Reader()
        self.timeout_s = timeout_s
        # Futures in the order their commands went out, each with when it was sent.
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._queued: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            future, _ = self.waiting.popleft()
            if future.done():  # cancelled meanwhile
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
        self._queued.clear()
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def send(self, args: Sequence[Any]) -> asyncio.Future[Any]:
        if self.lost:
            raise RedisConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        now = loop.time()
        self.waiting.append((future, now))
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append(hiredis.pack_command(tuple(args)))
        if self._watchdog is None:
            self._watchdog = loop.call_at(now + self.timeout_s, self._check)
        return future

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if queued and self.transport is not None and not self.lost:
            self.transport.write(b"".join(queued))

    def _check(self) -> None:
        # One timer per connection rather than one per call: when the oldest call has
        # waited the whole timeout, Redis is stuck or away, and everything in flight
        # fails (the next call starts on a new connection).
        self._watchdog = None
        if not self.waiting or self.lost:
            return
        loop = asyncio.get_running_loop()
        due = self.waiting[0][1] + self.timeout_s
        if due <= loop.time():
            self.fail(RedisTimeoutError("Redis did not answer in time"))
        else:
            self._watchdog = loop.call_at(due, self._check)


class LeanConnection:
    """``await lean.mget(keys)``: values or None, as redis-py's ``mget`` returns them;
    ``await lean.call(*command)``; ``await lean.batch(commands)``."""

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
        return await protocol.send(args)

    async def batch(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run ``commands`` pipelined (one write with whatever else is queued); their
        replies in order. The first error reply raises, after all have been answered."""
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connect()
        return list(await asyncio.gather(*(protocol.send(command) for command in commands)))

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
                        lambda: _Protocol(self.timeout_s),
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
                    await protocol.send(command)
            except BaseException:
                protocol.fail(RedisConnectionError("Redis connection set-up failed"))
                raise
            self._protocol = protocol
            return protocol

    async def aclose(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("connection closed"))
            self._protocol = None


def ssl_context(tls: dict[str, Any]) -> ssl.SSLContext:
    """An SSL context from redis-py's ``ssl_*`` arguments (``redis_client.tls_options``):
    the server's certificate is always verified."""
    context = ssl.create_default_context(cafile=tls.get("ssl_ca_certs"))
    context.check_hostname = bool(tls.get("ssl_check_hostname", True))
    if tls.get("ssl_certfile"):
        context.load_cert_chain(tls["ssl_certfile"], tls.get("ssl_keyfile"))
    return context


def lean_connection(url: str, tls: dict[str, Any], timeout_s: float = 2.0) -> LeanConnection | None:
    """A :class:`LeanConnection` to a single Redis at ``url``; None for a Cluster or a
    Unix socket (the caller keeps redis-py for those)."""
    parts = urlsplit(url)
    if is_cluster_url(url) or parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        return None
    path = parts.path.strip("/")
    return LeanConnection(
        parts.hostname,
        parts.port or 6379,
        db=int(path) if path else 0,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl_context=ssl_context(tls) if parts.scheme == "rediss" else None,
        timeout_s=timeout_s,
    )


class RedisPyCommands:
    """The same calls through a redis-py client: for a Cluster or a Unix socket."""

    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self.redis.mget(keys)  # type: ignore[return-value]

    async def batch(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute()

    async def aclose(self) -> None:
        """The client is the caller's: nothing to close here."""


def request_commands(
    url: str, tls: dict[str, Any], redis: AsyncRedis
) -> LeanConnection | RedisPyCommands:
    """The connection a route's hot path uses: lean where it can be, else ``redis``."""
    return lean_connection(url, tls) or RedisPyCommands(redis)
