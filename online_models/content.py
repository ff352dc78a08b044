"""Content/affinity: match the user's category and brand affinities (from the profile) to
item attributes, so brand-new items can be recommended before anyone interacts with them.

Candidates are the newest catalog items of the user's favourite categories; any candidate
is scored by ``category share + 0.5 * brand share`` from the item's catalog record.

>>> model = ContentModel()
>>> store = MemoryStore()
>>> store.apply([ZAdd("currents:catalog:new:shoes", {"new-1": 5.0}),
...              HashSet("{i:new-1}:item", {"category": "shoes", "brand": "acme"})])
>>> query = Query("u", now=0, affinities={"category": {"shoes": 0.8}, "brand": {"acme": 0.5}})
>>> proposed = model.candidates(query, store.fetch(model.candidate_reads(query)))
>>> proposed["new-1"].explain()
'new in shoes'
>>> items = ["new-1"]
>>> model.score(query, items, store.fetch(model.item_reads(query, items)))
{'new-1': 1.05}
"""

from __future__ import annotations

from collections.abc import Sequence

from currents import keys
from currents.writes import HashSet, Write, ZAdd
from online_models.base import (
    Interaction,
    OnlineModel,
    Query,
    Read,
    Scored,
    State,
    item_record_read,
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

    def candidates(self, query: Query, state: State) -> dict[str, Scored]:
        shares = query.affinities.get("category", {})
        proposed: dict[str, Scored] = {}
        for category in self._categories(query):
            for item, _ in state.get(ztop(keys.category_new_items(category), self.new_items), []):
                score = shares.get(category, 0.1)
                if item not in proposed or proposed[item].score < score:
                    proposed[item] = Scored(score, f"new in {category}")
        return proposed

    def item_reads(self, query: Query, items: Sequence[str]) -> list[Read]:
        return list(map(item_record_read, items))

    def score(self, query: Query, items: Sequence[str], state: State) -> dict[str, float]:
        categories = query.affinities.get("category", {})
        brands = query.affinities.get("brand", {})
        scores: dict[str, float] = {}
        if not categories and not brands:
            return scores
        # Hot loop (every candidate of every request): names bound locally.
        lookup, category_share, brand_share = state.get, categories.get, brands.get
        empty: dict[str, str] = {}
        for item in items:
            record = lookup(item_record_read(item)) or empty
            score = category_share(record.get("category", ""), 0.0)
            score += BRAND_WEIGHT * brand_share(record.get("brand", ""), 0.0)
            if score > 0:
                scores[item] = round(score, 9)
        return scores

    @staticmethod
    def reason(query: Query, record: dict[str, str]) -> str | None:
        brands = query.affinities.get("brand", {})
        categories = query.affinities.get("category", {})
        if record.get("brand") and brands.get(record["brand"], 0) >= 0.2:
            return f"because you like {record['brand']}"
        if record.get("category") and categories.get(record["category"], 0) >= 0.2:
            return f"because you like {record['category']}"
        return None
