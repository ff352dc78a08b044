"""Trending: decayed popularity per scope (global, category, segment), each with a short
and a long half-life, blended at read time.

>>> model = TrendingModel(short_half_life_h=1, long_half_life_h=24, max_items=100)
>>> store = MemoryStore()
>>> batch = [Interaction("u", "a", "product_viewed", 1.0, 0, category="shoes"),
...          Interaction("u", "b", "product_viewed", 3.0, 0, category="books")]
>>> store.apply(model.learn(batch, {}))
>>> query, catalog = Query("u", now=0), Catalog()
>>> ranked = model.propose(query, store.decoded(model.candidate_reads(query), catalog), catalog)
>>> catalog.items.names_of(ranked.codes), ranked.scores.tolist()
(['b', 'a'], [1.0, 0.3333333333333333])
>>> query = Query("u", now=0, category="shoes")
>>> ranked = model.propose(query, store.decoded(model.candidate_reads(query), catalog), catalog)
>>> ranked.explain(ranked.codes)
[('trending in shoes', -1)]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from currents import keys
from currents.writes import Write, ZIncr, ZKeepTop
from online_models import kernels
from online_models.arrays import NO_CODE, Catalog
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
)
from online_models.decay import DecayClock
from online_models.memory import MemoryStore

__all__ = ["MemoryStore", "TrendingModel"]

GLOBAL = "global"


class TrendingModel(OnlineModel):
    """Parameters
    ----------
    short_half_life_h, long_half_life_h
        The two horizons; a candidate's score is the mean of its normalised scores.
    max_items
        Members kept per scope and horizon (trimmed per batch: memory stays flat).
    candidates_per_scope
        How many items one scope proposes.
    """

    name = "trending"

    def __init__(
        self,
        short_half_life_h: float = 6.0,
        long_half_life_h: float = 24.0 * 7,
        max_items: int = 5000,
        candidates_per_scope: int = 100,
    ) -> None:
        self.clocks = {
            "short": DecayClock(short_half_life_h * 3_600_000),
            "long": DecayClock(long_half_life_h * 3_600_000),
        }
        self.max_items = max_items
        self.per_scope = candidates_per_scope

    @staticmethod
    def scopes(interaction: Interaction) -> list[str]:
        scopes = [GLOBAL]
        if interaction.category:
            scopes.append("category:" + interaction.category)
        scopes += ["segment:" + s for s in interaction.segments]
        return scopes

    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        # Increments of one (key, item) are summed here, first-seen order and addition
        # order as `currents.writes.coalesce` would, so the batch builds far fewer writes.
        sums: dict[tuple[str, str], float] = {}
        for interaction in batch:
            if interaction.weight <= 0:
                continue
            item = interaction.item_id
            for horizon, clock in self.clocks.items():
                generation = clock.generation(interaction.ts)
                amount = interaction.weight * clock.weight(interaction.ts, generation)
                for scope in self.scopes(interaction):
                    slot = (keys.popularity(f"{horizon}:{scope}", generation), item)
                    previous = sums.get(slot)
                    sums[slot] = amount if previous is None else amount + previous
        writes: list[Write] = [ZIncr(key, member, total) for (key, member), total in sums.items()]
        touched = {key for key, _ in sums}
        writes += [ZKeepTop(key, self.max_items) for key in sorted(touched)]
        return writes

    def query_scopes(self, query: Query) -> list[str]:
        if query.category:
            return ["category:" + query.category]
        scopes = [GLOBAL]
        top_categories = list(query.affinities.get("category", {}))[:2]
        scopes += ["category:" + c for c in top_categories]
        scopes += ["segment:" + s for s in query.segments[:2]]
        return scopes

    def _scope_reads(self, scope: str, now: int) -> list[GenerationReads]:
        generations = tuple(clock.generation(now) for clock in self.clocks.values())
        return _scope_reads(scope, tuple(self.clocks), generations, self.per_scope)

    @staticmethod
    def _key(scope: str, generation: int) -> str:
        return keys.popularity(scope, generation)

    def candidate_reads(self, query: Query) -> list[Read]:
        return [
            read
            for scope in self.query_scopes(query)
            for pair in self._scope_reads(scope, query.now)
            for read in pair
        ]

    def propose(self, query: Query, state: State, catalog: Catalog) -> Proposal | None:
        """Each scope blends its horizons' normalised scores (their mean); an item scores
        its best scope's blend, narrower scopes after the first at 0.9 of theirs, and
        is explained by the first scope reaching that score."""
        scopes = self.query_scopes(query)
        lists, weights, scope_of = [], [], []
        for rank, scope in enumerate(scopes):
            boost = 1.0 if rank == 0 else 0.9
            for pair in self._scope_reads(scope, query.now):
                lists.append(generations(state, pair))
                weights.append(boost / len(self.clocks))
                scope_of.append(rank)
        sizes = [scores.size for scores in lists]
        if not any(sizes):
            return None
        lengths = np.array(sizes, np.int64)
        scratch = catalog.scratch()
        present, best, leader = kernels.best_group(
            np.concatenate([scores.codes for scores in lists]),
            np.concatenate([scores.normalised for scores in lists]),
            lengths,
            np.asarray(weights, float),
            np.asarray(scope_of, np.int64),
            *scratch.floats,
            scratch.ints,
        )
        # The global scope explains itself as "popular now"; narrower ones name it.
        labels = [("popular now" if s == GLOBAL else _describe(s), NO_CODE) for s in scopes]
        return Proposal(present, best, leader, labels)


def _describe(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"trending in {name}" if kind == "category" else f"popular with {name} shoppers"


@functools.lru_cache(maxsize=16_384)  # a handful of scopes, read by every ranking
def _scope_reads(
    scope: str, horizons: tuple[str, ...], generations: tuple[int, ...], n: int
) -> list[GenerationReads]:
    return [
        generation_reads(functools.partial(TrendingModel._key, f"{horizon}:{scope}"), g, n)
        for horizon, g in zip(horizons, generations, strict=True)
    ]
