"""Execute model reads (``online_models.base.Read``) against Redis in one pipeline.

Plain GETs travel as MGETs on one Redis: redis-py spends ~25 µs packing and parsing each
pipelined command, so thousands of single-key GETs cost more than the Redis work behind
them. A Redis Cluster refuses an MGET whose keys span slots, so there each key keeps its
own GET. Sorted-set tops go as plain ZREVRANGE ... WITHSCORES: redis-py's own zrevrange
turns every RESP3 score back into bytes and parses it again (for RESP2 look-alike
replies), which cost as much as the rest of the reply's handling.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio.cluster import ClusterPipeline

from currents.redis_client import AsyncRedis
from currents.text import as_text

Read = tuple[str, str, int]
MGET_CHUNK = 1000


class QueuedGets:
    """GETs of ``keys`` queued on ``pipe``; :meth:`values` picks their replies back out.

    >>> class Pipe:  # records what is queued
    ...     def __init__(self): self.queued = []
    ...     def mget(self, keys): self.queued.append(("mget", list(keys)))
    ...     def get(self, key): self.queued.append(("get", key))
    >>> pipe = Pipe()
    >>> gets = QueuedGets(pipe, ["a", "b", "c"], chunk=2)
    >>> pipe.queued, gets.replies
    ([('mget', ['a', 'b']), ('mget', ['c'])], 2)
    >>> gets.values([[b"1", None], [b"3"]])
    [b'1', None, b'3']
    """

    def __init__(self, pipe: Any, keys: Sequence[str], *, chunk: int = MGET_CHUNK) -> None:
        self.single = isinstance(pipe, ClusterPipeline)
        if self.single:
            for key in keys:
                pipe.get(key)
            self.replies = len(keys)
        else:
            for begin in range(0, len(keys), chunk):
                pipe.mget(keys[begin : begin + chunk])
            self.replies = -(-len(keys) // chunk)

    def values(self, replies: Sequence[Any]) -> list[Any]:
        """The values, in key order, from this object's slice of the pipeline's replies."""
        if self.single:
            return list(replies)
        return [value for chunk in replies for value in chunk]


async def get_many(redis: AsyncRedis, keys: Sequence[str]) -> list[Any]:
    """The values of ``keys`` (None where missing), in one round trip."""
    if not keys:
        return []
    pipe = redis.pipeline(transaction=False)
    gets = QueuedGets(pipe, keys)
    return gets.values(await pipe.execute())


def score_pairs(reply: Sequence[Any]) -> list[tuple[str, float]]:
    """A ZREVRANGE ... WITHSCORES reply as ``[(member, score)]``, in either protocol:
    RESP3 nests ``[member, score]`` pairs with float scores, RESP2 alternates member and
    score bytes. The floats are the ones redis-py's zrevrange returns.

    >>> score_pairs([[b"a", 2.5], [b"b", 1e-300]])
    [('a', 2.5), ('b', 1e-300)]
    >>> score_pairs([b"a", b"2.5", b"b", b"1e-300"])
    [('a', 2.5), ('b', 1e-300)]
    >>> score_pairs([])
    []
    """
    pairs = reply if reply and isinstance(reply[0], list | tuple) else _paired(reply)
    # as_text inlined: this runs for every member of every sorted set read.
    return [
        (member.decode() if isinstance(member, bytes) else str(member), float(score))
        for member, score in pairs
    ]


def _paired(flat: Sequence[Any]) -> Iterable[tuple[Any, Any]]:
    members = iter(flat)
    return zip(members, members, strict=True)


async def fetch_reads(redis: AsyncRedis, reads: Iterable[Read]) -> dict[Read, Any]:
    """One round trip for any number of reads; results keyed by the read."""
    unique = list(dict.fromkeys(reads))
    if not unique:
        return {}
    plain = [read for read in unique if read[0] == "get"]
    other = [read for read in unique if read[0] != "get"]
    pipe = redis.pipeline(transaction=False)
    gets = QueuedGets(pipe, [key for _, key, _ in plain])
    for op, key, n in other:
        if op == "ztop":
            pipe.execute_command("ZREVRANGE", key, 0, n - 1, "WITHSCORES")
        elif op == "hgetall":
            pipe.hgetall(key)
        else:
            raise ValueError(f"unknown read {op!r}")
    replies = await pipe.execute()
    results: dict[Read, Any] = dict(zip(plain, gets.values(replies[: gets.replies]), strict=True))
    for read, reply in zip(other, replies[gets.replies :], strict=True):
        if read[0] == "ztop":
            results[read] = score_pairs(reply)
        else:
            results[read] = {as_text(k): as_text(v) for k, v in reply.items()}
    return results
