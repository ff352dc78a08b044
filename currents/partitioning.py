"""Which partition a key lands on: Kafka's default partitioner (murmur2), shared by the
API's record packing and the worker's ownership checks.

>>> partition_for("u-42", 4) == partition_for("u-42", 4)
True
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: str, partitions: int) -> int:
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)
