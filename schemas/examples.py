"""One valid example per event type: the source of docs/events.md and of the schema tests."""

from __future__ import annotations

import copy
from typing import Any

_BASE = {"user_id": "u-42", "session_id": "s-1001", "channel": "web"}

EXAMPLES: dict[str, dict[str, Any]] = {
    "product_viewed": {"properties": {"product_id": "sku-1", "category": "shoes", "price": 59.9}},
    "product_clicked": {"properties": {"product_id": "sku-1", "recommendation_id": "rec-7f3a"}},
    "products_searched": {"properties": {"query": "trail running shoes"}},
    "product_added": {"properties": {"product_id": "sku-1", "price": 59.9, "quantity": 1}},
    "product_removed": {"properties": {"product_id": "sku-1", "price": 59.9, "quantity": 1}},
    "checkout_started": {
        "properties": {"products": [{"product_id": "sku-1", "price": 59.9, "quantity": 1}]}
    },
    "order_completed": {
        "properties": {
            "order_id": "o-981",
            "products": [
                {"product_id": "sku-1", "price": 59.9, "quantity": 1},
                {"product_id": "sku-7", "price": 12.5, "quantity": 2},
            ],
            "revenue": 84.9,
            "currency": "EUR",
        }
    },
    "order_refunded": {
        "properties": {
            "order_id": "o-981",
            "products": [{"product_id": "sku-7", "price": 12.5, "quantity": 2}],
            "revenue": 25.0,
            "currency": "EUR",
        }
    },
    "product_reviewed": {"properties": {"product_id": "sku-1", "rating": 5}},
    "product_shared": {"properties": {"product_id": "sku-1"}},
    "product_favorited": {"properties": {"product_id": "sku-1"}},
    "recommendation_shown": {
        "properties": {"recommendation_id": "rec-7f3a", "item_ids": ["sku-1", "sku-9", "sku-4"]}
    },
    "promotion_viewed": {"properties": {"promotion_id": "promo-1", "campaign_id": "welcome"}},
    "promotion_clicked": {"properties": {"promotion_id": "promo-1", "campaign_id": "welcome"}},
    "coupon_redeemed": {
        "properties": {"coupon_code": "WELCOME-7Q2", "promotion_id": "promo-1", "points_used": 100}
    },
    "identify": {
        "properties": {
            "traits": {"age_band": "25-34", "region": "DE-BE", "marketing_consent": True}
        }
    },
    "consent_updated": {"properties": {"personalization": False, "marketing": True}},
    "user_erased": {"properties": {}},
    "item_upserted": {
        "properties": {
            "item_id": "sku-1",
            "title": "Trail runner 2",
            "category": "shoes",
            "brand": "acme",
            "price": 59.9,
            "in_stock": True,
            "tags": ["running", "outdoor"],
        }
    },
}


def example_event(event_type: str, **overrides: Any) -> dict[str, Any]:
    """A complete, valid event of ``event_type``; ``overrides`` replace top-level fields."""
    body = copy.deepcopy(EXAMPLES[event_type])
    envelope: dict[str, Any] = (
        {"timestamp": "2026-11-22T10:00:00Z"}
        if event_type == "item_upserted"
        else {**_BASE, "timestamp": "2026-11-22T10:00:00Z"}
    )
    return {"event_id": f"ex-{event_type}", "type": event_type, **envelope, **body, **overrides}
