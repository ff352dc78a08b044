"""Per-API-key rate limiting that holds across API replicas, at a fraction of a Redis
round trip per request.

Each key gets ``limit`` requests per one-second window, counted in Redis
(``keys.rate_limit``). A replica does not ask Redis for every request: it leases a
block of the window's budget at once (INCRBY on the window's counter) and spends the
block locally. The sum of all leases never exceeds the limit, so replicas together
admit at most ``limit`` requests per window; a replica that leased more than it used
only lets the window's tail go unused.

>>> lease_size(2000)
100
>>> lease_size(10)
1
>>> granted_from(total=100, lease=100, limit=150)  # first lease: all of it
100
>>> granted_from(total=200, lease=100, limit=150)  # 100 leased before: 50 remain
50
>>> granted_from(total=300, lease=100, limit=150)
0
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from currents import keys
from currents.redis_client import AsyncRedis

log = logging.getLogger("currents.api")

LEASES_PER_WINDOW = 20
WINDOW_TTL_S = 5


def lease_size(limit: int) -> int:
    """How much budget one Redis call leases: 5% of the limit, at least one request."""
    return max(1, limit // LEASES_PER_WINDOW)


def granted_from(total: int, lease: int, limit: int) -> int:
    """The part of a lease that fits under ``limit``, given the counter after INCRBY."""
    return max(0, min(lease, limit - (total - lease)))


@dataclass
class _Budget:
    window: int = -1
    remaining: int = 0
    exhausted: bool = False
    # One lease in flight per key: concurrent requests wait for it instead of each
    # leasing (and stranding) a block of the window's budget.
    leasing: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    def __init__(self, redis: AsyncRedis, limit_per_s: int) -> None:
        self.redis = redis
        self.limit = limit_per_s
        self.lease = lease_size(limit_per_s) if limit_per_s > 0 else 0
        self.budgets: dict[str, _Budget] = {}

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    async def check(self, key_name: str) -> Decision:
        if not self.enabled:
            return Decision(True)
        now = time.time()
        window = int(now)
        budget = self.budgets.setdefault(key_name, _Budget())
        if budget.window != window:
            budget.window, budget.remaining, budget.exhausted = window, 0, False
        if budget.remaining == 0 and not budget.exhausted:
            async with budget.leasing:
                if budget.window != window:  # the window turned while we waited
                    budget.window, budget.remaining, budget.exhausted = window, 0, False
                if budget.remaining == 0 and not budget.exhausted:
                    granted = await self._lease(key_name, window)
                    if granted is None:  # Redis is away: the route decides how to degrade
                        return Decision(True)
                    budget.remaining += granted
                    budget.exhausted = granted < self.lease
        if budget.remaining > 0:
            budget.remaining -= 1
            return Decision(True)
        return Decision(False, retry_after_s=max(1, math.ceil(window + 1 - now)))

    async def _lease(self, key_name: str, window: int) -> int | None:
        counter = keys.rate_limit(key_name, window)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incrby(counter, self.lease)
            pipe.expire(counter, WINDOW_TTL_S)
            total, _ = await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("rate limiter cannot reach redis", extra={"error": type(error).__name__})
            return None
        return granted_from(int(total), self.lease, self.limit)
