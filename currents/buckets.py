"""Deterministic per-user buckets for experiments and campaign holdouts.

>>> bucket("exp", "user-1") == bucket("exp", "user-1") and 0 <= bucket("exp", "user-1") < 1
True
"""

from __future__ import annotations

import hashlib


def bucket(namespace: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by (namespace, user)."""
    digest = hashlib.blake2b(f"{namespace}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
