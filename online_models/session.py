"""Session-based next-item model for anonymous and returning shoppers alike.

Learns, within a session, which item is looked at right after which (a decayed first-order
Markov chain); recommends what usually comes next after the session's latest items.

>>> model = SessionModel()
>>> store = MemoryStore()
>>> batch = [Interaction("anon", "b", "product_viewed", 1.0, 0, session_items=("a",))]
>>> store.apply(model.learn(batch, {}))
>>> query = Query(None, now=0, session_items=("a",))
>>> proposed = model.candidates(query, store.fetch(model.candidate_reads(query)))
>>> {item: scored.explain() for item, scored in proposed.items()}
{'b': 'often viewed next after a'}
"""

from __future__ import annotations

from collections.abc import Sequence

from currents import keys
from currents.writes import Write, ZIncr, ZKeepTop
from online_models.base import (
    GenerationReads,
    Interaction,
    OnlineModel,
    Query,
    Read,
    Scored,
    State,
    generation_reads,
    normalise,
    read_generations,
)
from online_models.decay import DecayClock
from online_models.memory import MemoryStore

__all__ = ["MemoryStore", "SessionModel"]

STEP_WEIGHTS = (1.0, 0.5, 0.25)


class SessionModel(OnlineModel):
    """Parameters
    ----------
    successors
        Next items kept per item (top-K).
    half_life_h
        Half-life of a transition's weight.
    """

    name = "session"

    def __init__(self, successors: int = 30, half_life_h: float = 24.0 * 14) -> None:
        self.successors = successors
        self.clock = DecayClock(half_life_h * 3_600_000)

    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        writes: list[Write] = []
        touched: set[str] = set()
        for interaction in batch:
            if interaction.weight <= 0 or not interaction.session_items:
                continue
            previous = interaction.session_items[0]
            if previous == interaction.item_id:
                continue
            generation = self.clock.generation(interaction.ts)
            key = keys.item_next(previous, generation)
            writes.append(
                ZIncr(key, interaction.item_id, self.clock.weight(interaction.ts, generation))
            )
            touched.add(key)
        writes += [ZKeepTop(key, self.successors) for key in sorted(touched)]
        return writes

    def _reads(self, item: str, now: int) -> GenerationReads:
        return generation_reads(
            lambda g: keys.item_next(item, g), self.clock.generation(now), self.successors
        )

    def _recent(self, query: Query) -> list[str]:
        items = list(query.session_items)
        if query.context_item and query.context_item not in items[:1]:
            items.insert(0, query.context_item)
        return items[: len(STEP_WEIGHTS)]

    def candidate_reads(self, query: Query) -> list[Read]:
        return [r for item in self._recent(query) for r in self._reads(item, query.now)]

    def candidates(self, query: Query, state: State) -> dict[str, Scored]:
        totals: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for step, item in enumerate(self._recent(query)):
            merged = read_generations(state, self._reads(item, query.now))
            for successor, value in normalise(merged).items():
                contribution = STEP_WEIGHTS[step] * value
                totals[successor] = totals.get(successor, 0.0) + contribution
                if contribution > best.get(successor, (0.0, ""))[0]:
                    best[successor] = (contribution, item)
        return {
            item: Scored(score, "often viewed next after {item}", source=best[item][1])
            for item, score in totals.items()
        }
