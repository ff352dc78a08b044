"""How much work the worker does between two returns to the event loop.

Heartbeats, the sweep timer, Kafka's consumer and every socket timeout live on the
worker's event loop. A stretch of compute that keeps the loop busy for seconds makes
replies that are already waiting look like timeouts, and a retry of a whole batch is just
as long: a livelock (the stall seen on grocery backfills). So:

- a batch is cut into parts by *cost* (events plus order lines), never by record count;
- :class:`Stretches` runs the compute (decode, parse state, fold, learn, pack) off the
  loop, on one compute thread;
- :class:`PartSizer` shrinks the parts when what stays on the loop (reading replies)
  held it past half of ``CURRENTS_WORKER_MAX_BLOCK_MS``, or a stretch of compute ran past
  twice that (a part's latency), and grows them back when both are short. Bigger parts
  coalesce more (hot items' neighbour lists are trimmed once a part), so the sizer keeps
  them as big as those bounds allow;
- :class:`LoopWatch` measures how long the loop really stayed busy and says so in the log
  (what is left on it: Faust's own per-record work, parsing Redis replies, and the cyclic
  collector, whose time it reports).

>>> sizer = PartSizer(most=1000, start=400)
>>> sizer.observe(load=4.0)  # four times its budget: shrink hard
>>> sizer.limit
80
>>> for _ in range(3):
...     sizer.observe(load=0.1)  # well under: grow back a quarter at a time
>>> sizer.limit
159
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from streams.decode import PositionedEvent

log = logging.getLogger("currents.worker")
T = TypeVar("T")

GROWTH = 1.25
# Shrink to this share of what would just fit: the next part's events differ.
SHRINK_MARGIN = 0.8
WATCH_INTERVAL_S = 0.02


def event_cost(positioned: PositionedEvent) -> int:
    """One per event, plus one per order line: what folding and learning it costs."""
    event = positioned.event
    if event.type == "order_completed":
        return 1 + len(event.props.products)
    return 1


class PartSizer:
    """The cost limit of one part of a batch, adapted to how long parts ran.

    Parameters
    ----------
    most
        The limit never grows past this (``CURRENTS_WORKER_BATCH_COST``).
    start
        The first limit; it adapts from the first part on.
    """

    def __init__(self, most: int, start: int | None = None) -> None:
        self.most = most
        self.limit = max(1, min(most, start if start is not None else most))

    def observe(self, load: float) -> None:
        """Adapt to a part whose ``load`` was this share of its budget (1.0: exactly)."""
        if load > 1.0:
            self.limit = max(1, int(self.limit / load * SHRINK_MARGIN))
        elif load < 0.5 and self.limit < self.most:
            self.limit = min(self.most, int(self.limit * GROWTH) + 1)

    def take(self, pending: deque[PositionedEvent], cost: int) -> tuple[list[PositionedEvent], int]:
        """The next part from the front of ``pending`` (whose events cost ``cost`` in
        all): events up to the limit, at least one (a costlier event goes alone).
        Returns the part and the cost left in ``pending``."""
        part: list[PositionedEvent] = []
        taken = 0
        while pending:
            weight = event_cost(pending[0])
            if part and taken + weight > self.limit:
                break
            part.append(pending.popleft())
            taken += weight
        return part, cost - taken

    def cut(self, events: Sequence[PositionedEvent]) -> Iterator[list[PositionedEvent]]:
        """Consecutive parts of ``events``, each as :meth:`take` makes them; reads the
        limit as it goes, so a part that ran long makes the next ones smaller."""
        pending = deque(events)
        cost = sum(event_cost(p) for p in pending)
        while pending:
            part, cost = self.take(pending, cost)
            yield part


class Stretches:
    """Runs the stretches of compute of one part off the event loop, on the worker's one
    compute thread, and times them for the sizer.

    Pure logic only (fold, learn, coalesce): it touches no loop object and no client,
    and the handler's lock keeps one part's compute at a time. The loop keeps its
    timers, heartbeats and sockets meanwhile: with the GIL it waits at most a switch
    interval (5 ms) for its turn, where inline compute would hold it for the whole
    stretch.
    """

    def __init__(self, executor: Executor | None) -> None:
        self.executor = executor
        self.busiest_s = 0.0
        self.busiest = ""

    async def run(self, work: Callable[[], T], name: str) -> T:
        started = time.perf_counter()
        try:
            if self.executor is None:
                return work()
            return await asyncio.get_running_loop().run_in_executor(self.executor, work)
        finally:
            took = time.perf_counter() - started
            if took > self.busiest_s:
                self.busiest_s, self.busiest = took, name


class LoopWatch:
    """Measures how long the event loop stays busy: a task that asks to wake every
    ``WATCH_INTERVAL_S`` and logs when it woke more than ``max_block_s`` late because
    the loop's thread was computing."""

    def __init__(self, max_block_s: float) -> None:
        self.max_block_s = max_block_s
        self.longest_s = 0.0
        self.blocks = 0
        self.recent_s = 0.0  # the longest block since :meth:`take_recent` last asked
        self.gc_s = 0.0  # time spent in the cyclic collector, which a block may include
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None
        # A sampling thread notes where the loop's thread is while a block lasts, so the
        # log says what blocked it, not only for how long.
        self._beat = time.perf_counter()
        self._where = ""
        self._loop_thread = 0
        self._sampler: threading.Thread | None = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_s += time.perf_counter() - self._gc_started

    def start(self) -> None:
        if self._task is None:
            gc.callbacks.append(self._on_gc)
            self._task = asyncio.ensure_future(self._watch())
            self._loop_thread = threading.get_ident()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()

    def _sample(self) -> None:
        while self._task is not None:
            time.sleep(self.max_block_s / 2)
            beat = self._beat
            if time.perf_counter() - beat > self.max_block_s / 2 and not self._where:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    stack = traceback.extract_stack(frame)[-6:]
                    self._where = " < ".join(
                        f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack)
                    )

    def stop(self) -> None:
        """Stop watching (a stopping worker's shutdown work is not a batch's)."""
        if self._task is not None:
            gc.callbacks.remove(self._on_gc)
            self._task.cancel()
            self._task = None

    def take_recent(self) -> float:
        """The longest block since the last call (what one part of a batch caused)."""
        recent, self.recent_s = self.recent_s, 0.0
        return recent

    async def _watch(self) -> None:
        while True:
            asked, cpu, collected = time.perf_counter(), time.thread_time(), self.gc_s
            self._beat, self._where = asked, ""
            await asyncio.sleep(WATCH_INTERVAL_S)
            late = time.perf_counter() - asked - WATCH_INTERVAL_S
            # The loop's own thread computing, not the machine's other processes: on a
            # shared box the OS may keep an idle loop waiting too.
            busy = min(late, time.thread_time() - cpu)
            self.longest_s = max(self.longest_s, busy)
            self.recent_s = max(self.recent_s, busy)
            if busy > self.max_block_s:
                self.blocks += 1
                log.warning(
                    "event loop blocked",
                    extra={
                        "blocked_ms": round(busy * 1000),
                        "late_ms": round(late * 1000),
                        "gc_ms": round((self.gc_s - collected) * 1000),
                        "where": self._where,
                        "max_block_ms": round(self.max_block_s * 1000),
                    },
                )
