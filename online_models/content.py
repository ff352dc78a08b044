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
>>> _ = store.decoded(row_reads(["new-1"], model.item_rows), catalog)
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
    RECORD,
    Interaction,
    OnlineModel,
    Proposal,
    Query,
    Read,
    State,
    lists_proposal,
    row_reads,
    ztop,
)
from online_models.memory import MemoryStore

__all__ = ["ContentModel", "HashSet", "MemoryStore", "ZAdd", "row_reads"]

BRAND_WEIGHT = 0.5
# A brand or category share that explains an item ("because you like ..." + its name).
LIKED = 0.2
LIKE = "because you like "


class ContentModel(OnlineModel):
    """Parameters
    ----------
    categories
        How many of the user's top categories propose their newest items.
    new_items
        Newest items read per category.
    """

    name = "content"
    item_rows = frozenset({RECORD})

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
            catalog,
            how="max",
            values="constant",
        )

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
    def reasons(query: Query, codes: Codes, catalog: Catalog) -> list[str | None]:
        """Each item's reason when the shopper's affinity explains it: a brand, else a
        category, they hold at least ``LIKED`` of; None otherwise."""
        liked_brand = _shares(catalog.brands, query.affinities.get("brand", {})) >= LIKED
        liked_category = _shares(catalog.categories, query.affinities.get("category", {})) >= LIKED
        brands, categories = catalog.brand[codes], catalog.category[codes]
        by_brand, by_category = liked_brand[brands], liked_category[categories]
        brand_names, category_names = catalog.brands.names, catalog.categories.names
        return [
            LIKE + brand_names[b] if yes_b else LIKE + category_names[c] if yes_c else None
            for b, c, yes_b, yes_c in zip(
                brands.tolist(),
                categories.tolist(),
                by_brand.tolist(),
                by_category.tolist(),
                strict=True,
            )
        ]


def _shares(vocabulary: Vocabulary, shares: Mapping[str, float]) -> np.ndarray:
    table = np.zeros(len(vocabulary) + 1)
    for name, share in shares.items():
        code = vocabulary.find(name)
        if code != NO_CODE:
            table[code] = share
    return table
