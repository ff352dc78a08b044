"""Session-based next-item model for anonymous and returning shoppers alike.

Learns, within a session, which items are looked at after which: each interaction adds
to the successor lists of the session's previous ``steps`` items, ``step_decay`` less per
step back (decayed in time like every score). Recommends what usually comes after the
session's latest ``steps`` items, the n-th latest weighing ``step_decay**n``.

>>> model = SessionModel()
>>> store = MemoryStore()
>>> batch = [Interaction("anon", "b", "product_viewed", 1.0, 0, session_items=("a",))]
>>> store.apply(model.learn(batch, {}))
>>> query, catalog = Query(None, now=0, session_items=("a",)), Catalog()
>>> proposed = model.propose(query, store.decoded(model.candidate_reads(query), catalog), catalog)
>>> catalog.items.names_of(proposed.codes), proposed.explain(proposed.codes)
(['b'], [('often viewed next after ', 1)])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from currents import keys
from currents.writes import Write, ZIncr, ZKeepTop
from online_models.arrays import Catalog
from online_models.base import (
    GenerationReads,
    Interaction,
    OnlineModel,
    Proposal,
    Query,
    Read,
    State,
    generation_reads,
    generations,
    lists_proposal,
)
from online_models.decay import DecayClock
from online_models.memory import MemoryStore

__all__ = ["MemoryStore", "SessionModel"]

REASON = "often viewed next after "  # completed by the item's title


class SessionModel(OnlineModel):
    """Parameters
    ----------
    successors
        Next items kept per item (top-K).
    half_life_h
        Half-life of a transition's weight.
    steps
        How many earlier items of the session an item follows (learning), and how many of
        the session's latest items propose their successors (serving).
    step_decay
        Weight lost per step back, in both.
    """

    name = "session"

    def __init__(
        self,
        successors: int = 120,
        half_life_h: float = 24.0 * 14,
        steps: int = 10,
        step_decay: float = 0.8,
    ) -> None:
        self.successors = successors
        self.clock = DecayClock(half_life_h * 3_600_000)
        self.step_weights = tuple(step_decay**step for step in range(steps))

    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        # Increments of one (key, item) are summed in first-seen order, as coalesce would.
        sums: dict[tuple[str, str], float] = {}
        for interaction in batch:
            if interaction.weight <= 0 or not interaction.session_items:
                continue
            item = interaction.item_id
            generation = self.clock.generation(interaction.ts)
            amount = self.clock.weight(interaction.ts, generation)
            for weight, previous in zip(self.step_weights, interaction.session_items, strict=False):
                if previous == item:
                    continue
                slot = (keys.item_next(previous, generation), item)
                total = sums.get(slot)
                sums[slot] = weight * amount if total is None else total + weight * amount
        writes: list[Write] = [ZIncr(key, member, total) for (key, member), total in sums.items()]
        writes += [ZKeepTop(key, self.successors) for key in sorted({key for key, _ in sums})]
        return writes

    def _reads(self, item: str, now: int) -> GenerationReads:
        return _successor_reads(item, self.clock.generation(now), self.successors)

    def _recent(self, query: Query) -> list[str]:
        items = list(query.session_items)
        if query.context_item and query.context_item not in items[:1]:
            items.insert(0, query.context_item)
        return items[: len(self.step_weights)]

    def candidate_reads(self, query: Query) -> list[Read]:
        return [r for item in self._recent(query) for r in self._reads(item, query.now)]

    def propose(self, query: Query, state: State, catalog: Catalog) -> Proposal | None:
        recent = self._recent(query)
        return lists_proposal(
            [generations(state, self._reads(item, query.now)) for item in recent],
            self.step_weights[: len(recent)],
            [(REASON, catalog.code(item)) for item in recent],
            catalog,
        )


@functools.lru_cache(maxsize=131_072)  # built per session item of every ranking
def _successor_reads(item: str, generation: int, n: int) -> GenerationReads:
    return generation_reads(lambda g: keys.item_next(item, g), generation, n)
