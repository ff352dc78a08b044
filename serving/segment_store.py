"""Segment definitions, sizes, members and backfill progress in Redis (API side)."""

from __future__ import annotations

import base64
import time
from typing import Any

from currents import keys
from currents.redis_client import AsyncRedis
from currents.text import as_text
from profiles.segments import SegmentDefinition


def encode_cursor(member: str) -> str:
    return base64.urlsafe_b64encode(member.encode()).decode().rstrip("=")


# Unpadded base64url: every string of this shape decodes, so every cursor the API's
# schema admits is a position in the member order (a hand-made one just starts there).
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"


def decode_cursor(cursor: str) -> bytes:
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode())


class SegmentStore:
    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis

    async def all(self) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(keys.segment_definitions())
        definitions = sorted(
            (SegmentDefinition.from_json(blob) for blob in raw.values()), key=lambda d: d.name
        )
        return await self._describe(definitions)

    async def get(self, name: str) -> dict[str, Any] | None:
        blob = await self.redis.hget(keys.segment_definitions(), name)
        if blob is None:
            return None
        return (await self._describe([SegmentDefinition.from_json(blob)]))[0]

    async def _describe(self, definitions: list[SegmentDefinition]) -> list[dict[str, Any]]:
        if not definitions:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for definition in definitions:
            pipe.zcard(keys.segment_members(definition.name))
            pipe.hgetall(keys.segment_backfill(definition.name))
        replies = await pipe.execute()
        described = []
        for index, definition in enumerate(definitions):
            size, progress = replies[2 * index], replies[2 * index + 1]
            progress = {as_text(k): as_text(v) for k, v in progress.items()}
            described.append(
                {
                    "name": definition.name,
                    "condition": definition.condition,
                    "description": definition.description,
                    "version": definition.version,
                    "size": int(size),
                    "backfill": {
                        "state": progress.get("state", "pending"),
                        "done": int(progress.get("done", 0)),
                        "total": int(progress.get("total", 0)),
                    },
                }
            )
        return described

    async def put(self, name: str, condition: str, description: str) -> tuple[dict[str, Any], bool]:
        """Store a (validated) definition; returns it and whether it was new."""
        current = await self.redis.hget(keys.segment_definitions(), name)
        if current is not None:
            existing = SegmentDefinition.from_json(current)
            if existing.condition == condition and existing.description == description:
                described = await self.get(name)
                assert described is not None
                return described, False
        version = int(await self.redis.incr(keys.segment_version()))
        definition = SegmentDefinition.create(name, condition, description, version)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.segment_definitions(), name, definition.to_json())
        pipe.hset(
            keys.segment_backfill(name),
            mapping={
                "state": "pending",
                "done": 0,
                "total": 0,
                "version": version,
                "requested_at": int(time.time() * 1000),
            },
        )
        # Bumped again after the write: a worker that read the first bump before the new
        # definition landed sees the version move once more and reloads.
        pipe.incr(keys.segment_version())
        await pipe.execute()
        described = await self.get(name)
        assert described is not None
        return described, current is None

    async def delete(self, name: str) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(keys.segment_definitions(), name)
        pipe.delete(keys.segment_members(name))
        pipe.delete(keys.segment_backfill(name))
        pipe.incr(keys.segment_version())
        removed, *_ = await pipe.execute()
        return bool(removed)

    async def members(
        self, name: str, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        start = b"-" if cursor is None else b"(" + decode_cursor(cursor)
        raw = await self.redis.zrangebylex(
            keys.segment_members(name), start, "+", start=0, num=limit
        )
        members = [as_text(m) for m in raw]
        next_cursor = encode_cursor(members[-1]) if len(members) == limit else None
        return members, next_cursor
