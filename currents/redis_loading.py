"""A Redis that is loading its dataset is "not yet", never "down".

After a restart Redis reads its append-only file before it answers anything but INFO:
every other command gets ``-LOADING``. A shop's AOF holds gigabytes and loads for
minutes. Every process waits for it (the worker, `currents up`, the benchmarks) with
progress in the log, and the API answers ``/readyz`` 503 with the progress meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis as sync_redis
from redis.exceptions import BusyLoadingError

log = logging.getLogger("currents.redis")

POLL_S = 0.25
LOG_EVERY_S = 5.0


@dataclass(frozen=True)
class Loading:
    """How far a loading Redis has got (INFO persistence, answered while loading)."""

    percent: float | None
    eta_s: int | None

    @classmethod
    def of(cls, info: dict[str, Any]) -> Loading:
        percent = info.get("loading_loaded_perc")
        eta = info.get("loading_eta_seconds")
        return cls(
            float(percent) if percent is not None else None,
            int(eta) if eta is not None else None,
        )

    def describe(self) -> str:
        """``redis is loading its dataset (52.5 %, about 3 s left)``."""
        parts = []
        if self.percent is not None:
            parts.append(f"{self.percent:.1f} %")
        if self.eta_s is not None and self.eta_s >= 0:
            parts.append(f"about {self.eta_s} s left")
        detail = f" ({', '.join(parts)})" if parts else ""
        return "redis is loading its dataset" + detail


def _log_progress(what: str, loading: Loading) -> None:
    log.info(
        "waiting for redis to load its dataset",
        extra={"waiting": what, "loaded_percent": loading.percent, "eta_s": loading.eta_s},
    )


async def loading_state(url: str, **options: Any) -> Loading:
    """The load's progress, on a connection of its own: a loading Redis refuses the
    CLIENT SETINFO that redis-py sends on connecting, so a normal client cannot even
    connect, while INFO itself is answered. ``options``: TLS (``tls_options``)."""
    import redis.asyncio as aioredis

    from currents.redis_client import _strip_cluster_flag

    client = aioredis.Redis.from_url(
        _strip_cluster_flag(url), socket_timeout=2, lib_name=None, lib_version=None, **options
    )
    try:
        return Loading.of(await client.info("persistence"))
    finally:
        await client.aclose()


def wait_until_loaded_sync(
    url: str, what: str, poll_s: float = POLL_S, say: Any = None, **options: Any
) -> None:
    """Return once the Redis at ``url`` answers PING; while it loads, report progress
    every few seconds to ``say`` (the log by default). Any other error is the caller's:
    a Redis that is down is not one that is loading."""
    from currents.redis_client import _strip_cluster_flag

    # A Cluster's seed node is enough: each node loads its own file, and its slots are
    # served once it has.
    client = sync_redis.Redis.from_url(
        _strip_cluster_flag(url), socket_timeout=5, lib_name=None, lib_version=None, **options
    )
    logged = 0.0
    try:
        while True:
            try:
                client.ping()
                return
            except BusyLoadingError:
                if time.monotonic() - logged >= LOG_EVERY_S:
                    try:
                        loading = Loading.of(client.info("persistence"))
                    except BusyLoadingError:
                        loading = Loading(None, None)
                    if say is None:
                        _log_progress(what, loading)
                    else:
                        say(f"{what}: waiting, {loading.describe()}")
                    logged = time.monotonic()
                time.sleep(poll_s)
    finally:
        client.close()
