"""Business rules and experiments: stored in Redis, cached in every API process.

A background task checks one version counter every second and reloads both tables when
it moved, so the request path never pays a round trip for configuration and every
replica converges within a second of an admin change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from redis.exceptions import RedisError

from currents import keys
from currents.redis_client import AsyncRedis, transactional
from currents.text import as_text
from serving.business_rules import Rule
from serving.experiments import Experiment

log = logging.getLogger("currents.api.config")
REFRESH_S = 1.0


class ConfigStore:
    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis
        self.rules: list[Rule] = []
        self.experiments: dict[str, Experiment] = {}
        self.version: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.refresh()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except (RedisError, OSError) as error:
                log.warning("config refresh failed", extra={"error": type(error).__name__})

    async def refresh(self, force: bool = False) -> None:
        version = int(await self.redis.get(keys.config_version()) or 0)
        if version == self.version and not force:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.business_rules())
        pipe.hgetall(keys.experiments())
        raw_rules, raw_experiments = await pipe.execute()
        self.rules = sorted(
            (Rule.model_validate_json(v) for v in raw_rules.values()), key=lambda r: r.id
        )
        self.experiments = {
            e.name: e for e in (Experiment.model_validate_json(v) for v in raw_experiments.values())
        }
        self.version = version

    async def _write(self, table: str, name: str, value: bytes | None) -> None:
        pipe = self.redis.pipeline(transaction=transactional(self.redis))
        if value is None:
            pipe.hdel(table, name)
        else:
            pipe.hset(table, name, value)
        pipe.incr(keys.config_version())
        await pipe.execute()
        await self.refresh(force=True)

    async def put_rule(self, rule: Rule) -> None:
        await self._write(keys.business_rules(), rule.id, rule.model_dump_json().encode())

    async def delete_rule(self, rule_id: str) -> bool:
        await self.refresh(force=True)
        if not any(r.id == rule_id for r in self.rules):
            return False
        await self._write(keys.business_rules(), rule_id, None)
        return True

    async def put_experiment(self, experiment: Experiment) -> None:
        await self._write(
            keys.experiments(), experiment.name, experiment.model_dump_json().encode()
        )

    async def delete_experiment(self, name: str) -> bool:
        await self.refresh(force=True)
        if name not in self.experiments:
            return False
        await self._write(keys.experiments(), name, None)
        return True

    async def experiment_counts(self, name: str) -> dict[str, int]:
        raw = await self.redis.hgetall(keys.experiment_stats(name))
        return {as_text(k): int(v) for k, v in raw.items()}

    def active_experiment(self) -> Experiment | None:
        """The active experiment recommendations run under (the first by name)."""
        active = sorted((e for e in self.experiments.values() if e.active), key=lambda e: e.name)
        return active[0] if active else None


def recommendation_record(
    items: list[str], experiment: str | None, variant: str | None, now: int
) -> bytes:
    """What attribution needs of a served list. It names no shopper: the feedback that
    carries its id is the shopper's own events, and a record kept 7 days must not
    outlive an erasure with the shopper's id in it."""
    return orjson.dumps(
        {
            "items": items,
            "experiment": experiment,
            "variant": variant,
            "ts": now,
        }
    )
