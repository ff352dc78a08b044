"""Keyed one-way subjects for user ids: what an erasure marker is named by, so that the
marker that keeps a shopper's replays out does not itself store their id.

The key is ``CURRENTS_PSEUDONYM_KEY`` when it is set, the same secret the logs'
pseudonyms use; keep it out of Redis, and a Redis dump cannot be checked against guessed
ids. Without it, the first process to start stores a random key in Redis and every
process reads that one, so that the API writing a marker and the worker checking it
always agree.

>>> subjects = Subjects(b"k")
>>> subjects.of("alice") == subjects.of("alice") != subjects.of("bob")
True
>>> "alice" in subjects.of("alice")
False
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from currents import keys
from currents.redis_client import AsyncRedis


class Subjects:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def of(self, user_id: str) -> str:
        return hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()


async def load_subjects(redis: AsyncRedis, secret: str) -> Subjects:
    """The deployment's subjects: from ``secret`` (``CURRENTS_PSEUDONYM_KEY``), else from
    the key stored in Redis, created by whichever process asks first."""
    if secret:
        return Subjects(secret.encode())
    await redis.set(keys.subject_key(), secrets.token_hex(32), nx=True)
    stored = await redis.get(keys.subject_key())
    return Subjects(stored if isinstance(stored, bytes) else str(stored).encode())
