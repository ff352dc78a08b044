"""Grocery-style purchase traffic: big baskets, weekly regulars, long order histories.

The synthetic shoppers of :mod:`benchmarks.generator` buy 1-3 lines at a time. A real
grocery log does not look like that (issue: "the worker never stalls"): about 7 lines a
basket with a long tail past 60, customers who come back every week, and histories that
run to hundreds of order lines over a catalog of tens of thousands of items. This shape
reproduces those figures, deterministic under a seed:

- basket sizes: a log-normal rounded to whole lines, clipped to 1-80 (mean about 7, about
  one basket in a thousand past 60);
- 30 % of the customers are weekly regulars (one order every 5-9 days), the rest order
  every few weeks; a sixth of the regulars shop every 1-4 days with bigger baskets, so
  their histories reach hundreds of lines;
- each customer has staples (a personal set of items bought again and again, what makes
  grocery baskets repeat); the other lines come from Zipf-popular items.

>>> shop = HeavyBasketShop(customers=50, items=300, seed=3)
>>> events = list(shop.orders(200, end_ms=10**12))
>>> len(events), events[0]["type"]
(200, 'order_completed')
>>> all(1 <= len(e["properties"]["products"]) <= MAX_LINES for e in events)
True
>>> events == sorted(events, key=lambda e: e["timestamp"])
True
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np

DAY_MS = 86_400_000
MAX_LINES = 80
LINES_MU = 1.2
LINES_SIGMA = 0.85
REGULAR_SHARE = 0.3
# Of the regulars, the share who shop every few days with big baskets: the histories of
# hundreds of lines.
POWER_SHARE = 0.15
STAPLE_SHARE = 0.6
CATEGORIES = (
    "produce",
    "dairy",
    "bakery",
    "meat",
    "frozen",
    "pantry",
    "drinks",
    "snacks",
    "household",
    "baby",
    "pets",
    "personal-care",
)


def customer_id(index: int) -> str:
    return f"customer-{index:06d}"


class HeavyBasketShop:
    """Parameters
    ----------
    customers
        Distinct customers (the replayed log had about 30,000).
    items
        Catalog size (the replayed log had 23,812).
    seed
        Everything drawn from it: the same seed gives the same events.
    """

    def __init__(self, customers: int = 30_000, items: int = 23_812, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_customers = customers
        self.n_items = items
        ranks = np.arange(1, items + 1, dtype=float)
        weights = 1.0 / ranks**1.05
        self.cumulative = np.cumsum(weights / weights.sum())
        self.prices = np.round(self.rng.lognormal(1.0, 0.8, size=items) + 0.2, 2)
        draw = self.rng.random(customers)
        self.regular = draw < REGULAR_SHARE
        self.power = draw < REGULAR_SHARE * POWER_SHARE
        self.staples = [self._popular(int(self.rng.integers(15, 60))) for _ in range(customers)]

    def _popular(self, count: int) -> np.ndarray:
        """``count`` Zipf-popular item indexes (inverse-CDF draws: one search each)."""
        drawn = np.searchsorted(self.cumulative, self.rng.random(count) * self.cumulative[-1])
        return np.minimum(drawn, self.n_items - 1)

    def item_id(self, index: int) -> str:
        return f"g-{index:06d}"

    def category(self, index: int) -> str:
        return CATEGORIES[index % len(CATEGORIES)]

    def catalog_events(self, now_ms: int) -> list[dict[str, Any]]:
        return [
            {
                "event_id": f"grocery-catalog-{index}-{now_ms}",
                "type": "item_upserted",
                "timestamp": now_ms,
                "properties": {
                    "item_id": self.item_id(index),
                    "title": f"grocery item {index}",
                    "category": self.category(index),
                    "brand": f"brand-{index % 97}",
                    "price": float(self.prices[index]),
                    "in_stock": True,
                },
            }
            for index in range(self.n_items)
        ]

    def basket_size(self, customer: int) -> int:
        mu = LINES_MU + (0.9 if self.power[customer] else 0.4 if self.regular[customer] else 0.0)
        return int(min(MAX_LINES, max(1, round(self.rng.lognormal(mu, LINES_SIGMA)))))

    def _gap_ms(self, customer: int) -> int:
        if self.power[customer]:
            days = self.rng.uniform(1, 4)
        elif self.regular[customer]:
            days = self.rng.uniform(5, 9)
        else:
            days = self.rng.uniform(14, 60)
        return int(days * DAY_MS)

    def order(self, customer: int, ts: int) -> dict[str, Any]:
        size = self.basket_size(customer)
        staples = self.staples[customer]
        tries = size * 3  # duplicates are dropped: three draws a line always suffice
        from_staples = self.rng.random(tries) < STAPLE_SHARE
        picks = np.where(
            from_staples,
            staples[self.rng.integers(len(staples), size=tries)],
            self._popular(tries),
        )
        chosen = list(dict.fromkeys(int(i) for i in picks))[:size]
        quantities = [int(q) for q in self.rng.integers(1, 4, size=len(chosen))]
        lines: list[dict[str, Any]] = [
            {
                "product_id": self.item_id(index),
                "price": float(self.prices[index]),
                "quantity": quantity,
                "category": self.category(index),
            }
            for index, quantity in zip(chosen, quantities, strict=True)
        ]
        revenue = round(sum(line["price"] * line["quantity"] for line in lines), 2)
        rng_id = int(self.rng.integers(2**63))
        return {
            "event_id": uuid.UUID(int=rng_id << 64 | customer).hex,
            "type": "order_completed",
            "user_id": customer_id(customer),
            "timestamp": ts,
            "channel": "web",
            "properties": {
                "order_id": uuid.UUID(int=rng_id).hex,
                "products": lines,
                "revenue": revenue,
                "currency": "EUR",
            },
        }

    def orders_per_day(self) -> float:
        power = float(self.power.sum())
        regulars = float(self.regular.sum()) - power
        return power / 2.5 + regulars / 7.0 + (self.n_customers - regulars - power) / 37.0

    def orders(self, count: int, end_ms: int) -> Iterator[dict[str, Any]]:
        """``count`` orders in event-time order, ending at ``end_ms``; each customer
        orders again after their own gap (regulars weekly). The log spans as many days as
        ``count`` orders take at the customers' own pace, plus a fortnight of first
        visits."""
        days = count / self.orders_per_day() + 14.0
        start = end_ms - int(days * DAY_MS)
        due = [(start + int(self.rng.integers(0, 14 * DAY_MS)), c) for c in range(self.n_customers)]
        heapq.heapify(due)
        for _ in range(count):
            ts, customer = heapq.heappop(due)
            yield self.order(customer, min(ts, end_ms))
            heapq.heappush(due, (ts + self._gap_ms(customer), customer))

    def stream(self, now_ms: int) -> Iterator[dict[str, Any]]:
        """Endless orders stamped ``now_ms`` (callers restamp them as they send)."""
        while True:
            yield self.order(int(self.rng.integers(self.n_customers)), now_ms)

    @property
    def probe_item(self) -> str:
        return self.item_id(0)


def heavy_basket_events(
    orders: int, customers: int, items: int, end_ms: int, seed: int = 7
) -> list[dict[str, Any]]:
    """The catalog, then ``orders`` orders: what a grocery backfill sends."""
    shop = HeavyBasketShop(customers=customers, items=items, seed=seed)
    history = list(shop.orders(orders, end_ms))
    first = history[0]["timestamp"] if history else end_ms
    return shop.catalog_events(first - DAY_MS) + history
