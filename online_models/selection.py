"""After ranking: the request's filters, then the business rules, on the head of a
ranking (``online_models/ranking.py``) and only as deep as the answer needs.

The API applies it to a slate or to a ranking made on the spot, promotions and the
evaluator to rankings: one implementation for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from currents.slate import SlateRead
from online_models.ranking import Ranked
from serving.business_rules import Candidate, Rule, apply_rules, chosen_before_pins

Exclude = Literal["purchased", "viewed", "none"]
HEAD_FACTOR, HEAD_SLACK = 3, 30
# A plain request (stock and ``exclude`` only) walks this far before asking for the
# whole ranking: a slate's items are rarely out of stock or bought since.
PLAIN_FACTOR, PLAIN_SLACK = 2, 10


@dataclass
class Filters:
    exclude: Exclude = "purchased"
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    diversity: int | None = None  # max items per category


def _price(record: Mapping[str, str]) -> float | None:
    try:
        return float(record["price"])
    except (KeyError, ValueError):
        return None


def passes(record: Mapping[str, str], filters: Filters) -> bool:
    """Stock and request filters on an item's catalog record (unknown items pass stock)."""
    if record.get("in_stock") == "0":
        return False
    if filters.category is not None and record.get("category") != filters.category:
        return False
    price = _price(record)
    if filters.min_price is not None and (price is None or price < filters.min_price):
        return False
    return not (filters.max_price is not None and (price is None or price > filters.max_price))


def select(
    rank: Callable[[int | None], Ranked],
    record_of: Callable[[str], Mapping[str, str]],
    reason_of: Callable[[Ranked, int], str],
    filters: Filters,
    rules: list[Rule],
    n: int,
    pinned_records: Mapping[str, Mapping[str, str]],
) -> tuple[list[int], list[Candidate]]:
    """The positions of the ranked items passing the filters, and the response's items
    after the rules.

    Only the head of the ranking can reach the response, so only the head is explained
    and filtered, unless a rule may lift an item from deep down (boost, promote) or the
    head runs dry: then the whole pool is. Either way the response is the same."""
    reorders = any(r.active and r.kind in {"boost", "promote"} for r in rules)
    head: int | None = None if reorders else HEAD_FACTOR * n + HEAD_SLACK
    while True:
        ranked = rank(head)
        kept = [i for i, item in enumerate(ranked.items) if passes(record_of(item), filters)]
        candidates = [
            Candidate(
                ranked.items[i], ranked.scores[i], reason_of(ranked, i), record_of(ranked.items[i])
            )
            for i in kept
        ]
        final = apply_rules(candidates, rules, n, pinned_records, filters.diversity)
        if head is None or head_suffices(candidates, ranked, head, n, rules, filters.diversity):
            return kept, final
        head = None


def head_suffices(
    candidates: list[Candidate],
    ranked: Ranked,
    head: int,
    n: int,
    rules: list[Rule],
    diversity: int | None,
) -> bool:
    """Whether the response built from the ranking's first ``head`` items is the one the
    whole ranking gives (no boost or promote rule being active). It is when the ranking
    had no more items, or when ``n`` items were chosen and the lowest of them scores
    strictly above the head's last item: everything past the head scores no higher, so it
    sorts after every chosen item and the diversity cap stops before reaching it."""
    if not ranked.truncated:
        return True
    chosen = chosen_before_pins(candidates, rules, n, diversity)
    return len(chosen) == n and min(c.score for c in chosen) > ranked.scores[-1]


class NeedsRanking(Exception):
    """A slate cannot answer this request: rank on the spot (``reason`` is counted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def slate_ranking(
    slate: SlateRead, codes_of: Callable[[list[str]], list[int]]
) -> Callable[[int | None], Ranked]:
    """The slate as the head of its ranking, for :func:`serve`: only as much of it as is
    asked for is decoded (``codes_of`` gives the items' catalog codes). Asking past its
    end when the ranking held more (or for all of it, as boost rules do) raises
    NeedsRanking."""

    def rank(limit: int | None) -> Ranked:
        if limit is None or limit > len(slate):
            if slate.truncated:
                raise NeedsRanking("slate too short")
            limit = len(slate)
        part = slate.head(limit)
        return Ranked(
            items=part.items,
            codes=codes_of(part.items),
            scores=part.scores,
            models=part.models,
            reasons=part.reasons,
            sources=part.sources,
            personal=part.personal,
            truncated=part.truncated,
        )

    return rank


def without(ranked: Ranked, excluded: Collection[str]) -> Ranked:
    keep = [i for i, item in enumerate(ranked.items) if item not in excluded]
    if len(keep) == len(ranked):
        return ranked
    return Ranked(
        items=[ranked.items[i] for i in keep],
        codes=[ranked.codes[i] for i in keep],
        scores=[ranked.scores[i] for i in keep],
        models=[ranked.models[i] for i in keep],
        reasons=[ranked.reasons[i] for i in keep],
        sources=[ranked.sources[i] for i in keep],
        personal=[ranked.personal[i] for i in keep],
        truncated=ranked.truncated,
    )


class ItemRecords(Protocol):
    """Item records as an answer reads them (``online_models/arrays.py``
    CatalogRecords; the API's notes which were not fresh, ``serving/cache.py``)."""

    def record(self, item: str) -> Mapping[str, str]: ...

    def title(self, item: str) -> str: ...

    def in_stock(self, codes: list[int]) -> list[bool]: ...


def serve(
    rank: Callable[[int | None], Ranked],
    records: ItemRecords,
    excluded: Collection[str],
    pinned: list[str],
    n: int,
    filters: Filters,
    rules: list[Rule],
) -> tuple[list[dict[str, Any]], bool]:
    """A response's items from a ranking (a slate or one made on the spot): ``excluded``
    left out, the filters, then the rules; and whether anything personal shaped it.
    An item's reason names the title of the item it comes from."""
    if plain(filters, rules):
        return _first_available(rank, records, excluded, n)
    record_of = records.record
    pinned_records = {
        item: record
        for item in pinned
        if item not in excluded and (record := record_of(item)) and passes(record, filters)
    }
    personal: dict[str, bool] = {}

    def ranked(limit: int | None) -> Ranked:
        found = without(rank(limit), excluded)
        personal.update(zip(found.items, found.personal, strict=True))
        return found

    # Only the answer's items are explained: the head's reasons are looked up after.
    explained: dict[str, tuple[str, str | None]] = {}

    def reason_of(found: Ranked, i: int) -> str:
        explained[found.items[i]] = (found.reasons[i], found.sources[i])
        return ""

    _, final = select(ranked, record_of, reason_of, filters, rules, n, pinned_records)
    items = []
    for chosen in final:
        reason, source = chosen.reason, None
        if not reason:  # a ranked item (pins and promotions carry their own reason)
            reason, source = explained[chosen.item_id]
        if source is not None:
            reason += records.title(source)
        items.append({"item_id": chosen.item_id, "score": round(chosen.score, 6), "reason": reason})
    return items, any(personal.get(c.item_id, False) for c in final)


def plain(filters: Filters, rules: list[Rule]) -> bool:
    """No filter but stock and ``exclude``, no active rule: the answer is the ranking's
    first ``n`` available items, in order (the storefront's default request)."""
    return (
        filters.category is None
        and filters.min_price is None
        and filters.max_price is None
        and filters.diversity is None
        and not any(r.active for r in rules)
    )


def _first_available(
    rank: Callable[[int | None], Ranked],
    records: ItemRecords,
    excluded: Collection[str],
    n: int,
) -> tuple[list[dict[str, Any]], bool]:
    """What :func:`select` and the rules give for a :func:`plain` request, without
    building a candidate per item of the head: walk the ranking, skip what is excluded
    or out of stock (the head's stock read at once, from the catalog's column), stop at
    ``n``."""
    limit: int | None = PLAIN_FACTOR * n + PLAIN_SLACK
    while True:
        found = rank(limit)
        stock = records.in_stock(found.codes)
        chosen = []
        for i, item in enumerate(found.items):
            if not stock[i] or item in excluded:
                continue
            chosen.append(i)
            if len(chosen) == n:
                break
        if len(chosen) == n or not found.truncated or limit is None:
            break
        limit = None
    items = []
    for i in chosen:
        source = found.sources[i]
        reason = found.reasons[i] if source is None else found.reasons[i] + records.title(source)
        items.append(
            {"item_id": found.items[i], "score": round(found.scores[i], 6), "reason": reason}
        )
    return items, any(found.personal[i] for i in chosen)
