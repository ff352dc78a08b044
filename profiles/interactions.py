"""Turn an event into the interactions models learn from, given the user's state *before*
the event (their history, session and segments at that moment)."""

from __future__ import annotations

from collections.abc import Mapping

from online_models.base import Interaction
from profiles.fold import ItemFacts
from profiles.view import current_session_items
from schemas.events import Event
from schemas.profile import UserState

ITEM_INTERACTION_TYPES = frozenset(
    {"product_viewed", "product_clicked", "product_favorited", "product_added"}
)
HISTORY_WINDOW = 21
# Bought-together pairs one order may generate (``CURRENTS_COOCCURRENCE_PAIRS_PER_ORDER``):
# each line pairs with the most recent ``pairs // lines`` earlier purchases (at least one),
# so an 80-line basket costs what a 10-line one does, and a basket of a few lines pairs
# with the whole window as before.
PAIRS_PER_ORDER = 60


def interactions_of(
    event: Event,
    state: UserState,
    weights: Mapping[str, float],
    items: Mapping[str, ItemFacts],
    *,
    pairs_per_order: int = PAIRS_PER_ORDER,
) -> list[Interaction]:
    user = event.user_key
    if user is None:
        return []
    weight = weights.get(event.type, 0.0)
    segments = tuple(state.segments)
    if event.type in ITEM_INTERACTION_TYPES:
        product = event.props.product_id
        facts = items.get(product)
        return [
            Interaction(
                user_id=user,
                item_id=product,
                kind=event.type,
                weight=weight,
                ts=event.ts,
                category=event.props.category or (facts.category if facts else None),
                brand=event.props.brand or (facts.brand if facts else None),
                history=tuple(state.recent_item_ids(HISTORY_WINDOW)),
                session_items=tuple(current_session_items(state)),
                segments=segments,
            )
        ]
    if event.type == "order_completed":
        lines = event.props.products
        bought = [item for item, _ in state.purchased[:HISTORY_WINDOW]]
        per_line = max(1, min(HISTORY_WINDOW, pairs_per_order // max(1, len(lines))))
        result = []
        for line in lines:
            facts = items.get(line.product_id)
            result.append(
                Interaction(
                    user_id=user,
                    item_id=line.product_id,
                    kind=event.type,
                    weight=weight,
                    ts=event.ts,
                    category=line.category or (facts.category if facts else None),
                    brand=line.brand or (facts.brand if facts else None),
                    bought_before=tuple(bought[:per_line]),
                    segments=segments,
                )
            )
            bought.insert(0, line.product_id)
        return result
    return []
