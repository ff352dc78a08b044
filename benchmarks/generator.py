"""Synthetic shoppers with planted structure, deterministic under a seed.

- a catalog (``item_upserted``) of categories, brands and log-normal prices;
- Zipf item popularity within each category;
- users with 1-3 preferred categories;
- sessions that walk a view -> cart -> purchase funnel, where each item has a
  "partner" that shoppers often look at and buy next (the structure co-occurrence
  models must recover).

>>> shop = SyntheticShop(users=5, items=40, seed=1)
>>> catalog = shop.catalog_events(now_ms=0)
>>> len(catalog), catalog[0]["type"]
(40, 'item_upserted')
>>> events = shop.session_events(shop.rng.integers(5), now_ms=0)
>>> events[0]["type"] in {"product_viewed", "products_searched"}
True
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

CATEGORIES = (
    "electronics",
    "books",
    "fashion",
    "home",
    "sports",
    "beauty",
    "toys",
    "grocery",
    "garden",
    "automotive",
    "music",
    "pets",
)
BRANDS_PER_CATEGORY = 5
PARTNER_PROBABILITY = 0.45
ADD_TO_CART_PROBABILITY = 0.35
PURCHASE_PROBABILITY = 0.55
ANONYMOUS_SESSION_SHARE = 0.1


@dataclass(frozen=True)
class Item:
    item_id: str
    category: str
    brand: str
    price: float
    in_stock: bool
    title: str


def user_id(index: int) -> str:
    return f"user-{index:05d}"


class SyntheticShop:
    def __init__(
        self, users: int = 1000, items: int = 500, seed: int = 7, zipf_a: float = 1.1
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_users = users
        categories = CATEGORIES[: max(1, min(len(CATEGORIES), items // 10 or 1))]
        self.items: list[Item] = []
        self.by_category: dict[str, list[int]] = {c: [] for c in categories}
        base_price = {c: float(self.rng.uniform(8, 200)) for c in categories}
        for index in range(items):
            category = categories[index % len(categories)]
            brand = f"{category[:3]}-brand-{int(self.rng.integers(BRANDS_PER_CATEGORY))}"
            price = round(float(base_price[category] * self.rng.lognormal(0, 0.5)), 2)
            in_stock = bool(self.rng.random() > 0.03)
            item = Item(
                f"sku-{index:05d}", category, brand, price, in_stock, f"{brand} {category} #{index}"
            )
            self.by_category[category].append(index)
            self.items.append(item)
        # Zipf popularity within each category, and one partner per item in its category.
        self.category_weights: dict[str, np.ndarray] = {}
        self.partner: list[int] = [0] * items
        for category, members in self.by_category.items():
            ranks = np.arange(1, len(members) + 1, dtype=float)
            weights = 1.0 / ranks**zipf_a
            self.category_weights[category] = weights / weights.sum()
            shuffled = list(self.rng.permutation(members))
            for position, member in enumerate(shuffled):
                self.partner[member] = int(shuffled[(position + 1) % len(shuffled)])
        self.categories = categories
        preference = self.rng.dirichlet(np.full(len(categories), 0.3), size=users)
        self.user_preferences = preference

    # --- events --------------------------------------------------------------------------
    def catalog_events(self, now_ms: int) -> list[dict[str, Any]]:
        return [
            {
                "event_id": f"catalog-{item.item_id}-{now_ms}",
                "type": "item_upserted",
                "timestamp": now_ms,
                "properties": {
                    "item_id": item.item_id,
                    "title": item.title,
                    "category": item.category,
                    "brand": item.brand,
                    "price": item.price,
                    "in_stock": item.in_stock,
                    "tags": [item.category],
                },
            }
            for item in self.items
        ]

    def _pick_item(self, category: str) -> int:
        members = self.by_category[category]
        return members[int(self.rng.choice(len(members), p=self.category_weights[category]))]

    def session_events(
        self, user_index: int, now_ms: int, step_ms: int = 1, *, identified: bool = False
    ) -> list[dict[str, Any]]:
        """One shopping session of user ``user_index``; timestamps start at ``now_ms``."""
        rng = self.rng
        anonymous = not identified and rng.random() < ANONYMOUS_SESSION_SHARE
        who: dict[str, str] = (
            # The low digits: a 63-bit draw leaves the high ones of a 128-bit UUID zero.
            {"anonymous_id": f"anon-{uuid.UUID(int=int(rng.integers(2**63))).hex[-12:]}"}
            if anonymous
            else {"user_id": user_id(user_index)}
        )
        session_id = uuid.UUID(int=int(rng.integers(2**63))).hex
        category = self.categories[
            int(rng.choice(len(self.categories), p=self.user_preferences[user_index]))
        ]
        events: list[dict[str, Any]] = []
        clock = [now_ms]

        def emit(event_type: str, properties: dict[str, Any]) -> None:
            events.append(
                {
                    "event_id": uuid.UUID(int=int(rng.integers(2**63)) << 64 | len(events)).hex,
                    "type": event_type,
                    **who,
                    "session_id": session_id,
                    "timestamp": clock[0],
                    "channel": "app" if rng.random() < 0.3 else "web",
                    "properties": properties,
                }
            )
            clock[0] += step_ms

        if rng.random() < 0.2:
            emit("products_searched", {"query": category})
        viewed: list[int] = []
        current = self._pick_item(category)
        for _ in range(int(rng.integers(1, 7))):
            item = self.items[current]
            emit(
                "product_viewed",
                {
                    "product_id": item.item_id,
                    "category": item.category,
                    "brand": item.brand,
                    "price": item.price,
                },
            )
            viewed.append(current)
            current = (
                self.partner[current]
                if rng.random() < PARTNER_PROBABILITY
                else self._pick_item(category)
            )

        cart = [
            i
            for i in dict.fromkeys(viewed)
            if self.items[i].in_stock and rng.random() < ADD_TO_CART_PROBABILITY
        ]
        for index in cart:
            item = self.items[index]
            emit(
                "product_added",
                {
                    "product_id": item.item_id,
                    "price": item.price,
                    "quantity": 1,
                    "category": item.category,
                    "brand": item.brand,
                },
            )
        if cart and rng.random() < PURCHASE_PROBABILITY:
            emit("checkout_started", {})
            lines = [
                {
                    "product_id": self.items[i].item_id,
                    "price": self.items[i].price,
                    "quantity": 1,
                    "category": self.items[i].category,
                    "brand": self.items[i].brand,
                }
                for i in cart
            ]
            emit(
                "order_completed",
                {
                    "order_id": uuid.UUID(int=int(rng.integers(2**63))).hex,
                    "products": lines,
                    "revenue": round(sum(self.items[i].price for i in cart), 2),
                    "currency": "EUR",
                },
            )
        return events

    def stream(
        self, start_ms: int, session_gap_ms: int = 0, warm_up_users: int = 0
    ) -> Iterator[dict[str, Any]]:
        """Endless sessions of random users; event time advances with ``session_gap_ms``.

        The first ``warm_up_users`` users each get one identified session first, so a demo
        can point at ``user-00000`` and find history from the first seconds on."""
        clock = start_ms
        identified: set[int] = set()
        for user_index in range(min(warm_up_users, self.n_users)):
            yield self.identify_event(user_index, clock)
            identified.add(user_index)
            yield from self.session_events(user_index, clock, identified=True)
            clock += session_gap_ms
        while True:
            user_index = int(self.rng.integers(self.n_users))
            session = self.session_events(user_index, clock)
            if user_index not in identified and session and session[0].get("user_id"):
                identified.add(user_index)
                yield self.identify_event(user_index, clock)
            yield from session
            clock += session_gap_ms

    @property
    def probe_item(self) -> str:
        """An item every freshness probe views."""
        return self.items[0].item_id

    def identify_event(self, user_index: int, now_ms: int) -> dict[str, Any]:
        """The shopper's traits, once, before their first identified session. Drawn from
        a generator of its own, so adding them leaves every other event unchanged."""
        rng = random.Random(user_index * 1_000_003 + 17)
        return {
            "event_id": f"identify-{user_id(user_index)}",
            "type": "identify",
            "user_id": user_id(user_index),
            "timestamp": now_ms,
            "properties": {
                "traits": {
                    "age_band": rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"]),
                    "region": rng.choice(["DE-BE", "DE-BY", "FR-IDF", "NL-NH", "ES-MD"]),
                    "marketing_consent": rng.random() < 0.7,
                }
            },
        }
