"""Build a recommendation :class:`~online_models.base.Query` from a user's state blob.

Shared by the API and the evaluator, so offline numbers come from the same inputs.
"""

from __future__ import annotations

from online_models.base import Query
from profiles.view import current_session_items, shares
from schemas.profile import UserState

HISTORY_VIEWED = 20
HISTORY_BOUGHT = 5


def query_from_state(
    user_id: str | None,
    state: UserState,
    now: int,
    *,
    context_item: str | None = None,
    category: str | None = None,
) -> Query:
    history = [(item, ts) for item, ts in state.recent[:HISTORY_VIEWED]]
    history += [(item, ts) for item, ts in state.purchased[:HISTORY_BOUGHT]]
    history.sort(key=lambda pair: -pair[1])
    return Query(
        user_id=user_id,
        now=now,
        history=tuple(history),
        purchased=frozenset(state.purchased_item_ids()),
        session_items=tuple(current_session_items(state)),
        context_item=context_item,
        category=category,
        affinities={
            "category": shares(state.category_affinity, 10),
            "brand": shares(state.brand_affinity, 10),
        },
        segments=tuple(state.segments),
    )
