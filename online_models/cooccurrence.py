"""Item-to-item co-occurrence (viewed-together, bought-together), SAR style.

Each interaction pairs its item with the user's recent items (bought-together: with
items bought before); both directions gain the event's weight, grown by a decay clock so
old pairs fade, and shrunk by ``pair_decay`` per step between the two items in the
user's history (the item just before counts fully, the 10th before ~0.39). Neighbour
lists keep their top-K only, so memory stays flat. A user's candidates add each history
item's neighbour list, divided by its largest weight (so a popular item's long list does
not drown the others), weighted by how recently and how many steps ago they touched the
item.

>>> model = CooccurrenceModel(window=2, neighbours=10, half_life_h=24)
>>> store = MemoryStore()
>>> store.apply(model.learn([Interaction("u", "c", "product_viewed", 1.0, 0,
...                                      history=("b", "a", "z"))], {}))
>>> query, catalog = Query("v", now=0, history=(("a", 0),)), Catalog()
>>> proposed = model.propose(query, store.decoded(model.candidate_reads(query), catalog), catalog)
>>> catalog.items.names_of(proposed.codes), proposed.explain(proposed.codes)
(['c'], [('viewed together with ', 1)])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from currents import keys
from currents.writes import Write, ZIncr, ZKeepTop
from online_models.arrays import Catalog, Scores
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

__all__ = ["KINDS", "CooccurrenceModel", "MemoryStore"]

KINDS = ("viewed", "bought")
KIND_WEIGHTS = {"bought": 1.5, "viewed": 1.0}
# Completed by the source item's title when a person reads the reason.
REASONS = {"bought": "bought together with ", "viewed": "viewed together with "}
HISTORY_HALF_LIFE_MS = 24 * 3_600_000
HISTORY_USED = 20
PAIR_DECAY = 0.9
POSITION_DECAY = 0.9
VIEW_KINDS = frozenset({"product_viewed", "product_clicked", "product_favorited", "product_added"})


class CooccurrenceModel(OnlineModel):
    """Parameters
    ----------
    window
        How many of the user's most recent items each interaction pairs with.
    neighbours
        Neighbours kept per item and kind (top-K by decayed weight).
    half_life_h
        Half-life of a pair's weight, in hours.
    history_used
        How many of the user's recent items propose their neighbours.
    pair_decay
        A pair's weight is multiplied by this once per step the two items lie apart in
        the user's history (1.0: every pair in the window counts the same).
    position_decay
        The n-th most recent history item's neighbours count ``position_decay**n`` (on
        top of the 24 h half-life on its time).
    normalise_lists
        Divide each history item's neighbour weights by their maximum before summing.
    """

    name = "cooccurrence"

    def __init__(
        self,
        window: int = 20,
        neighbours: int = 120,
        half_life_h: float = 720.0,
        history_used: int = HISTORY_USED,
        pair_decay: float = PAIR_DECAY,
        position_decay: float = POSITION_DECAY,
        normalise_lists: bool = True,
    ) -> None:
        self.window = window
        self.history_used = history_used
        self.pair_decay = pair_decay
        self.position_decay = position_decay
        self.normalise_lists = normalise_lists
        self.neighbours = neighbours
        self.clock = DecayClock(half_life_ms=half_life_h * 3_600_000)

    # --- learning --------------------------------------------------------------------------
    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        writes: list[Write] = []
        sums: dict[tuple[str, str], float] = {}
        # Heavy baskets make thousands of pairs a batch: each neighbour key is built once.
        key_of: dict[tuple[str, str, int], str] = {}

        def key(item: str, kind: str, generation: int) -> str:
            found = key_of.get((item, kind, generation))
            if found is None:
                found = key_of[(item, kind, generation)] = keys.item_neighbours(
                    item, kind, generation
                )
            return found

        for interaction in batch:
            if interaction.weight <= 0:
                continue
            if interaction.kind == "order_completed":
                kind, history = "bought", interaction.bought_before
            elif interaction.kind in VIEW_KINDS:
                kind, history = "viewed", interaction.history
            else:
                continue
            generation = self.clock.generation(interaction.ts)
            amount = interaction.weight * self.clock.weight(interaction.ts, generation)
            item = interaction.item_id
            item_key = key(item, kind, generation)
            for other in history[: self.window]:
                if other != item:
                    for slot in ((item_key, other), (key(other, kind, generation), item)):
                        previous = sums.get(slot)
                        sums[slot] = amount if previous is None else amount + previous
                amount *= self.pair_decay
        # Summed per (key, member) in first-seen and addition order, as coalesce would.
        writes += [ZIncr(key, member, total) for (key, member), total in sums.items()]
        touched = {key for key, _ in sums}
        writes += [ZKeepTop(key, self.neighbours) for key in sorted(touched)]
        return writes

    # --- serving ---------------------------------------------------------------------------
    def neighbour_reads(self, item: str, kind: str, now: int) -> GenerationReads:
        return _neighbour_reads(item, kind, self.clock.generation(now), self.neighbours)

    def neighbours_of(self, item: str, kind: str, now: int, state: State) -> Scores:
        return generations(state, self.neighbour_reads(item, kind, now))

    def sources(self, query: Query) -> list[tuple[str, int]]:
        if query.context_item:
            return [(query.context_item, query.now)]
        newest_first: dict[str, int] = {}
        for item, ts in query.history[: self.history_used]:
            newest_first.setdefault(item, ts)
        return list(newest_first.items())

    def candidate_reads(self, query: Query) -> list[Read]:
        return [
            read
            for item, _ in self.sources(query)
            for kind in KINDS
            for read in self.neighbour_reads(item, kind, query.now)
        ]

    def propose(self, query: Query, state: State, catalog: Catalog) -> Proposal | None:
        sources = self.sources(query)
        newest = max((ts for _, ts in sources), default=query.now)
        generation = self.clock.generation(query.now)
        lists: list[Scores] = []
        weights: list[float] = []
        labels: list[tuple[str, int]] = []
        for position, (item, ts) in enumerate(sources):
            recency = 2.0 ** (-(newest - ts) / HISTORY_HALF_LIFE_MS)
            recency *= self.position_decay**position
            source = catalog.code(item)
            for kind in KINDS:
                reads = _neighbour_reads(item, kind, generation, self.neighbours)
                lists.append(generations(state, reads))
                weights.append(recency * KIND_WEIGHTS[kind])
                labels.append((REASONS[kind], source))
        return lists_proposal(
            lists, weights, labels, catalog, values="normalised" if self.normalise_lists else "raw"
        )


# Every ranking builds these reads for each of its shopper's history items, and the same
# items recur ranking after ranking.
@functools.lru_cache(maxsize=131_072)
def _neighbour_reads(item: str, kind: str, generation: int, n: int) -> GenerationReads:
    return generation_reads(lambda g: keys.item_neighbours(item, kind, g), generation, n)
