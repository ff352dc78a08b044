"""Content/affinity: match the user's category and brand affinities (from the profile) to
item attributes, so brand-new items can be recommended before anyone interacts with them.

Candidates are the newest catalog items of the user's favourite categories; any candidate
is scored by ``category share + 0.5 * brand share`` from the item's catalog record.

>>> model = ContentModel()
>>> store = MemoryStore()
>>> store.apply([ZAdd("currents:catalog:new:shoes", {"new-1": 5.0}),
...              HashSet("{i:new-1}:item", {"category": "shoes", "brand": "acme"})])
>>> query = Query("u", now=0, affinities={"category": {"shoes": 0.8}, "brand": {"acme": 0.5}})
>>> catalog = Catalog()
>>> proposed = model.propose(query, store.decoded(model.candidate_reads(query), catalog), catalog)
>>> proposed.scores.tolist(), proposed.explain(proposed.codes)
([0.8], [('new in shoes', -1)])
>>> _ = store.decoded(model.item_reads(query, ["new-1"]), catalog)
>>> model.score(query, proposed.codes, {}, catalog).tolist()
[1.05]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from currents import keys
from currents.writes import HashSet, Write, ZAdd
from online_models.arrays import NO_CODE, Catalog, Codes, Vocabulary, scores_in
from online_models.base import (
    Interaction,
    OnlineModel,
    Proposal,
    Query,
    Read,
    State,
    item_record_read,
    lists_proposal,
    ztop,
)
from online_models.memory import MemoryStore

__all__ = ["ContentModel", "HashSet", "MemoryStore", "ZAdd"]

BRAND_WEIGHT = 0.5


class ContentModel(OnlineModel):
    """Parameters
    ----------
    categories
        How many of the user's top categories propose their newest items.
    new_items
        Newest items read per category.
    """

    name = "content"

    def __init__(self, categories: int = 3, new_items: int = 30) -> None:
        self.categories = categories
        self.new_items = new_items

    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        return []  # affinities live in the profile; new arrivals come from the catalog

    def _categories(self, query: Query) -> list[str]:
        if query.category:
            return [query.category]
        return list(query.affinities.get("category", {}))[: self.categories]

    def candidate_reads(self, query: Query) -> list[Read]:
        return [ztop(keys.category_new_items(c), self.new_items) for c in self._categories(query)]

    def propose(self, query: Query, state: State, catalog: Catalog) -> Proposal | None:
        shares = query.affinities.get("category", {})
        categories = self._categories(query)
        return lists_proposal(
            [
                scores_in(state, ztop(keys.category_new_items(c), self.new_items))
                for c in categories
            ],
            [shares.get(c, 0.1) for c in categories],
            [("new in " + c, NO_CODE) for c in categories],
            how="max",
            values="constant",
        )

    def item_reads(self, query: Query, items: Sequence[str]) -> list[Read]:
        return list(map(item_record_read, items))

    def score(self, query: Query, pool: Codes, state: State, catalog: Catalog) -> np.ndarray | None:
        categories = query.affinities.get("category", {})
        brands = query.affinities.get("brand", {})
        if not categories and not brands:
            return None
        # One slot per known category (brand), plus a last one, 0, that unknown ones
        # (code -1) pick.
        category_share = _shares(catalog.categories, categories)
        brand_share = _shares(catalog.brands, brands)
        scores = category_share[catalog.category[pool]]
        scores += BRAND_WEIGHT * brand_share[catalog.brand[pool]]
        return np.round(scores, 9)

    @staticmethod
    def reason(query: Query, record: Mapping[str, str]) -> str | None:
        brands = query.affinities.get("brand", {})
        categories = query.affinities.get("category", {})
        if record.get("brand") and brands.get(record["brand"], 0) >= 0.2:
            return f"because you like {record['brand']}"
        if record.get("category") and categories.get(record["category"], 0) >= 0.2:
            return f"because you like {record['category']}"
        return None


def _shares(vocabulary: Vocabulary, shares: Mapping[str, float]) -> np.ndarray:
    table = np.zeros(len(vocabulary) + 1)
    for name, share in shares.items():
        code = vocabulary.find(name)
        if code != NO_CODE:
            table[code] = share
    return table
