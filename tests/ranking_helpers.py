"""Models' proposals and rankings as plain dicts, for tests that check their values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from online_models.arrays import NO_CODE, Catalog, decode
from online_models.base import OnlineModel, Query, Read, row_reads
from online_models.memory import MemoryStore
from online_models.ranking import Ranked, Ranker, catalog_for


def proposed(
    model: OnlineModel, query: Query, replies: MemoryStore | Mapping[Read, Any]
) -> dict[str, tuple[float, str]]:
    """item -> (score, reason), the reason completed by its source item's id."""
    catalog = Catalog(factors=16)
    reads = model.candidate_reads(query)
    if isinstance(replies, MemoryStore):
        state = replies.decoded(reads, catalog)
    else:
        state = decode({read: replies.get(read, []) for read in reads}, catalog)
    proposal = model.propose(query, state, catalog)
    if proposal is None:
        return {}
    names = catalog.items.names
    return {
        names[code]: (score, reason + ("" if source == NO_CODE else names[source]))
        for code, score, (reason, source) in zip(
            proposal.codes.tolist(),
            proposal.scores.tolist(),
            proposal.explain(proposal.codes),
            strict=True,
        )
    }


def ranked(ranker: Ranker, query: Query, store: MemoryStore, limit: int | None = None) -> Ranked:
    catalog = catalog_for(ranker.models)
    state = store.decoded(ranker.candidate_reads(query), catalog)
    pool = ranker.pool(query, state, catalog, query.purchased)
    state |= store.decoded(ranker.item_reads(query, catalog.items.names_of(pool.codes)), catalog)
    return ranker.rank(query, pool, state, catalog, limit)


def answers(
    model: OnlineModel, query: Query, fetch: Any, items: list[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """The model's proposals (item -> score) and its scores for ``items`` (item -> score,
    zeros left out), from ``fetch(reads) -> raw replies`` (a store's, or Redis's)."""
    catalog = Catalog(factors=16)
    state = decode(fetch(model.candidate_reads(query)), catalog)
    proposal = model.propose(query, state, catalog)
    proposals: dict[str, float] = {}
    if proposal is not None:
        proposals = dict(
            zip(catalog.items.names_of(proposal.codes), proposal.scores.tolist(), strict=True)
        )
    asked = sorted({*proposals, *items})
    state = decode(fetch(model.user_reads(query) + row_reads(asked, model.item_rows)), catalog)
    scored = model.score(query, catalog.codes(asked), state, catalog)
    scores = {}
    if scored is not None:
        scores = {item: value for item, value in zip(asked, scored.tolist(), strict=True) if value}
    return proposals, scores
