"""Redis client construction: one place that knows about single-node vs Cluster."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError

from currents.settings import Settings

AsyncRedis = aioredis.Redis | RedisCluster
CLUSTER_SCRIPT_CONCURRENCY = 8


def is_cluster_url(url: str) -> bool:
    query = parse_qs(urlsplit(url).query)
    return query.get("cluster", ["0"])[0].lower() in {"1", "true", "yes"}


def _strip_cluster_flag(url: str) -> str:
    parts = urlsplit(url)
    query = {k: v for k, v in parse_qs(parts.query).items() if k != "cluster"}
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


def tls_options(url: str, settings: Settings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` arguments for ``url`` from ``CURRENTS_REDIS_TLS_*``; none for a
    ``redis://`` URL (the settings refuse TLS files without ``rediss://``). The same
    arguments serve the asyncio, synchronous and Cluster clients.

    The server's certificate is always verified: against the CA file when one is set, else
    against the system's trust store.
    """
    if urlsplit(url).scheme != "rediss":
        return {}

    def path(value: Any) -> str | None:
        return str(value) if value is not None else None

    return {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": path(settings.redis_tls_ca_file),
        "ssl_certfile": path(settings.redis_tls_cert_file),
        "ssl_keyfile": path(settings.redis_tls_key_file),
        "ssl_check_hostname": settings.redis_tls_check_hostname,
    }


def describe_error(error: BaseException) -> str:
    """What failed when talking to Redis, in words an operator can act on: a TLS or
    authentication failure needs a configuration change, not a retry.

    >>> describe_error(AuthenticationError("invalid username-password pair"))
    'authentication failed; check the user and password in CURRENTS_REDIS_URL'
    >>> describe_error(TimeoutError())
    'TimeoutError'
    """
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"TLS certificate verification failed ({cause.verify_message}); "
                "check CURRENTS_REDIS_TLS_CA_FILE"
            )
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or cause})"
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, AuthenticationError):
        return "authentication failed; check the user and password in CURRENTS_REDIS_URL"
    return type(error).__name__


def create_redis(url: str, *, timeout_s: float = 2.0, **extra: Any) -> AsyncRedis:
    """An asyncio client for ``url``; add ``?cluster=1`` for a Redis Cluster seed node.

    Timeouts are short on purpose: callers must fail fast (503) rather than hang when
    Redis is away, and the worker retries its batch.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 15,
        **extra,
    }
    if is_cluster_url(url):
        return RedisCluster.from_url(_strip_cluster_flag(url), **options)
    return aioredis.Redis.from_url(url, **options)


def transactional(redis: AsyncRedis) -> bool:
    """Whether MULTI/EXEC may span keys: yes on one Redis; a Cluster runs a transaction
    only within one hash slot, so there multi-key writes go as a plain pipeline."""
    return not isinstance(redis, RedisCluster)


async def run_scripts(
    redis: AsyncRedis, calls: Sequence[tuple[Any, list[str], list[Any]]]
) -> list[Any]:
    """Run registered Lua scripts ``(script, keys, args)`` and return their answers in order.

    One pipelined round trip on a single Redis. redis-py refuses scripts inside a Cluster
    pipeline, so there each call (all its keys in one slot) is awaited concurrently.
    """
    if not calls:
        return []
    if isinstance(redis, RedisCluster):
        # Bounded: one call per slot can be thousands; the pool has far fewer connections.
        limit = asyncio.Semaphore(CLUSTER_SCRIPT_CONCURRENCY)

        async def call(script: Any, keys: list[str], args: list[Any]) -> Any:
            async with limit:
                return await script(keys=keys, args=args)

        return list(await asyncio.gather(*(call(*c) for c in calls)))
    pipe = redis.pipeline(transaction=False)
    for script, keys, args in calls:
        await script(keys=keys, args=args, client=pipe)
    return list(await pipe.execute(raise_on_error=True))
