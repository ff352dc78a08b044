"""Read a user's public profile: the state blob, then the price tertiles of the
categories they bought (two pipelined round trips), derived at the current time."""

from __future__ import annotations

from typing import Any

from currents import keys
from currents.redis_client import AsyncRedis
from profiles.rules import ProfileRules
from profiles.view import build_profile
from schemas.profile import UserState


class ProfileReader:
    def __init__(self, redis: AsyncRedis, rules: ProfileRules) -> None:
        self.redis = redis
        self.rules = rules

    async def read(self, user_id: str, now: int) -> dict[str, Any] | None:
        blob: bytes | None = await self.redis.get(keys.user_profile(user_id))  # type: ignore[assignment]
        state = UserState.from_bytes(blob)
        if not state.exists:
            return None
        categories = sorted(state.bought_categories)
        tertiles: dict[str, tuple[float, float]] = {}
        if categories:
            values = await self.redis.hmget(keys.price_tertiles(), categories)
            for category, value in zip(categories, values, strict=True):
                if value:
                    low, high = (value.decode() if isinstance(value, bytes) else value).split(",")
                    tertiles[category] = (float(low), float(high))
        return build_profile(user_id, state, now, self.rules, tertiles)
