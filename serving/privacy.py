"""Consent, erasure and access: a shopper's rights over what the engine holds.

- Consent goes through the events topic (``consent_updated``), so the worker, the only
  writer of a user's state, applies it in order with the user's other events.
- Erasure leaves a marker first, then deletes every key with the user's hash tag and the
  user's entries in shared structures, then sends ``user_erased`` through the topic so the
  worker deletes again after any batch that was in flight. Events stamped at or before
  the marker are dropped by the worker: a replay cannot resurrect the user.
- Export returns every key with the user's hash tag, decoded, plus the derived profile.
Each operation is recorded in the audit stream with the API key's name and a keyed
pseudonym of the user, never the user id.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict
from typing import Any

import orjson

from currents import keys
from currents.logs import pseudonym
from currents.redis_client import AsyncRedis
from currents.settings import Settings
from currents.slate import decode_slate
from currents.subjects import Subjects, load_subjects
from currents.text import as_text
from online_models.matrix_factorization import unpack
from profiles.erasure import ErasureScope, erasure_writes
from schemas.profile import UserState, blob_json
from serving.ingest import plan_records
from serving.producer import BrokerUnavailable, EventProducer
from serving.profiles import ProfileReader
from streams.sink import RedisSink

log = logging.getLogger("currents.api")

AUDIT_MAX_ENTRIES = 100_000
SCAN_COUNT = 1000


class PrivacyService:
    def __init__(
        self,
        redis: AsyncRedis,
        producer: EventProducer,
        profiles: ProfileReader,
        settings: Settings,
    ) -> None:
        self.redis = redis
        self.producer = producer
        self.profiles = profiles
        self.settings = settings
        self.subjects: Subjects | None = None
        # The worker's store applies the erasure's writes, as it applies every batch's.
        self.sink = RedisSink(redis)

    # --- consent -----------------------------------------------------------------------------
    async def set_consent(self, user_id: str, *, personalization: bool, marketing: bool) -> int:
        now = _now_ms()
        await self._produce(
            user_id,
            "consent_updated",
            now,
            {"personalization": personalization, "marketing": marketing},
        )
        if not personalization:
            # Served at once as a stranger: the worker deletes the slate again when it
            # applies the consent event, in case one was being ranked meanwhile.
            await self.redis.delete(keys.user_slate(user_id))
        return now

    # --- erasure -----------------------------------------------------------------------------
    async def erase(self, user_id: str, by: str) -> dict[str, Any]:
        now = _now_ms()
        subjects = await self._subjects()
        marker = keys.erasure_marker(subjects.of(user_id))
        await self.redis.set(marker, now, ex=self.settings.erasure_marker_days * 86_400)
        user_keys = await self._user_keys(user_id)
        state = UserState.from_bytes(await self.redis.get(keys.user_profile(user_id)))  # type: ignore[arg-type]
        if user_keys:
            await self.redis.delete(*user_keys)
        await self._forget_in_shared_structures(user_id, state)
        # Through the topic last: the worker deletes again once any in-flight batch of
        # this user's events has landed. If the broker is down the marker and deletions
        # stand, and the caller is told to retry so the second pass happens too.
        await self._produce(user_id, "user_erased", now, {})
        await self._audit("erase", by, user_id, now)
        log.info("user erased", extra={"subject": pseudonym(user_id), "keys": len(user_keys)})
        return {"user_id": user_id, "erased_at": now, "keys_deleted": len(user_keys)}

    async def _subjects(self) -> Subjects:
        if self.subjects is None:
            self.subjects = await load_subjects(self.redis, self.settings.pseudonym_key)
        return self.subjects

    async def rename_legacy_markers(self) -> int:
        """Markers that earlier versions named by the raw id, renamed to the keyed
        subject with their value and time to live, once per deployment (a flag records
        it); returns how many."""
        if await self.redis.exists(keys.legacy_markers_renamed()):
            return 0  # a whole-keyspace scan, needed once per deployment
        subjects = await self._subjects()
        renamed = 0
        pattern = keys.legacy_erasure_marker_pattern()
        async for raw in self.redis.scan_iter(match=pattern, count=SCAN_COUNT):
            old = as_text(raw)
            value, ttl_ms = await self.redis.get(old), await self.redis.pttl(old)
            if value is not None:
                marker = keys.erasure_marker(subjects.of(keys.user_of_legacy_erasure_marker(old)))
                await self.redis.set(marker, value, px=ttl_ms if ttl_ms > 0 else None)
            await self.redis.delete(old)
            renamed += 1
        await self.redis.set(keys.legacy_markers_renamed(), _now_ms())
        if renamed:
            log.info("erasure markers renamed to keyed subjects", extra={"markers": renamed})
        return renamed

    async def _forget_in_shared_structures(self, user_id: str, state: UserState) -> None:
        """The data map's shared structures (``profiles/erasure.py``), every instance that
        may hold the shopper: every segment and campaign defined or in their state, every
        timer of theirs (price-drop timers are only in the timers' set), every partition's
        refresh requests, and every item's price-drop watchers (they keep an item's newest
        500 viewers however old, so the profile cannot list them all)."""
        segments = {as_text(n) for n in await self.redis.hkeys(keys.segment_definitions())}
        campaigns = {as_text(c) for c in await self.redis.hkeys(keys.campaigns())}
        pattern = keys.item_watchers_pattern()
        items = {
            keys.item_of_key(as_text(k))
            async for k in self.redis.scan_iter(match=pattern, count=SCAN_COUNT)
        }
        timers = {
            keys.timer_of_member(as_text(member))
            async for member, _ in self.redis.zscan_iter(
                keys.campaign_timers(), match=keys.timer_member_pattern(user_id), count=SCAN_COUNT
            )
        }
        scope = ErasureScope(
            segments=segments | set(state.segments),
            timers=campaigns | set(state.timers) | timers,
            partitions=self.settings.events_partitions,
            items=items,
        )
        await self.sink.apply(erasure_writes(user_id, scope))

    # --- access ------------------------------------------------------------------------------
    async def export(self, user_id: str, by: str) -> dict[str, Any] | None:
        now = _now_ms()
        held: dict[str, Any] = {}
        for key in sorted(await self._user_keys(user_id)):
            held[key] = await self._decoded(key)
        memberships = await self._segment_memberships(user_id)
        profile = await self.profiles.read(user_id, now)
        if not held and not memberships:
            return None
        await self._audit("export", by, user_id, now)
        return {
            "user_id": user_id,
            "exported_at": now,
            "profile": profile,
            "segments": memberships,
            "keys": held,
        }

    async def _segment_memberships(self, user_id: str) -> list[str]:
        names = sorted(as_text(n) for n in await self.redis.hkeys(keys.segment_definitions()))
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.zscore(keys.segment_members(name), user_id)
        scores = await pipe.execute()
        return [name for name, score in zip(names, scores, strict=True) if score is not None]

    async def _decoded(self, key: str) -> dict[str, Any]:
        kind = as_text(await self.redis.type(key))
        value: Any
        if kind == "string":
            raw: bytes = await self.redis.get(key)  # type: ignore[assignment]
            if key.endswith(":profile"):
                value = orjson.loads(blob_json(raw))
            elif key.endswith(":mf"):
                value = [round(float(x), 6) for x in unpack(raw)]
            elif key.endswith(":slate"):
                value = asdict(decode_slate(raw))
            else:
                value = as_text(raw)
        elif kind == "hash":
            fields = await self.redis.hgetall(key)
            value = {as_text(k): as_text(v) for k, v in fields.items()}
        elif kind == "zset":
            members: list[Any] = await self.redis.zrange(key, 0, -1, withscores=True)
            value = [[as_text(member), score] for member, score in members]
        elif kind == "list":
            value = [as_text(v) for v in await self.redis.lrange(key, 0, -1)]
        elif kind == "set":
            value = sorted(as_text(v) for v in await self.redis.smembers(key))
        else:
            value = None
        return {"type": kind, "value": value}

    # --- shared ------------------------------------------------------------------------------
    async def _user_keys(self, user_id: str) -> list[str]:
        pattern = keys.user_key_pattern(user_id)
        return [as_text(k) async for k in self.redis.scan_iter(match=pattern, count=SCAN_COUNT)]

    async def _produce(self, user_id: str, kind: str, ts: int, properties: dict[str, Any]) -> None:
        event = {
            "event_id": f"{kind}-{uuid.uuid4().hex}",
            "type": kind,
            "user_id": user_id,
            "timestamp": ts,
            "properties": properties,
        }
        plan = plan_records([event], self.producer.partitions, allow_control=True)
        if plan.rejected:  # the route validated the id; this is a bug, not a user error
            raise ValueError(plan.rejected[0]["error"])
        if not all(await self.producer.send(plan.records)):
            raise BrokerUnavailable("the broker did not take the event")

    async def _audit(self, action: str, by: str, user_id: str, at: int) -> None:
        await self.redis.xadd(
            keys.audit_log(),
            {"action": action, "by": by, "subject": pseudonym(user_id), "at": at},
            maxlen=AUDIT_MAX_ENTRIES,
            approximate=True,
        )


def _now_ms() -> int:
    return int(time.time() * 1000)
