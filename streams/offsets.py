"""Redis, not Kafka, says how far a worker got.

Each batch writes the last offset it covers per partition (``keys.consumer_progress``)
together with its effects. When a worker is assigned partitions it commits that
progress to Kafka before Faust seeks, so consumption resumes exactly after what Redis
holds:

- after a graceful stop whose final commit missed the last batch, nothing is
  redelivered;
- after Faust acked a batch that never reached Redis (its take buffer acks even when
  the agent is cancelled mid-batch), or after Redis lost its newest writes (AOF
  ``everysec``), the missing records are read again instead of being skipped.

Per-user watermarks still make any redelivery harmless; this makes it rare and closes
the gaps dedup cannot see.

>>> plan_commits(committed={0: 40, 1: None, 2: 10}, applied={0: 41, 2: 9})
({0: 42}, [])
>>> plan_commits(committed={0: None}, applied={0: 12})
({}, [0])
"""

from __future__ import annotations


def plan_commits(
    committed: dict[int, int | None], applied: dict[int, int]
) -> tuple[dict[int, int], list[int]]:
    """Offsets to commit (next offset to read = last applied + 1) and partitions whose
    Redis progress must be forgotten.

    ``committed`` holds Kafka's committed offset of each assigned partition (None when
    the group never committed there); ``applied`` the last applied offset from Redis.
    Progress in Redis for a partition the broker has no commit for means the broker lost
    its topics (the embedded broker keeps nothing across a restart): that progress
    belongs to records that no longer exist, so it is dropped rather than trusted.
    """
    commits: dict[int, int] = {}
    forget: list[int] = []
    for partition, kafka_offset in sorted(committed.items()):
        last_applied = applied.get(partition)
        if last_applied is None:
            continue
        if kafka_offset is None or kafka_offset < 0:
            forget.append(partition)
        elif kafka_offset != last_applied + 1:
            commits[partition] = last_applied + 1
    return commits, forget
