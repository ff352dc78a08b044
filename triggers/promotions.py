"""The promotion a campaign delivers: its JSON shape and its message template.

>>> p = {"message": "{item.title} now {item.price}", "items": [{"item_id": "a"}]}
>>> fill_items(p, {"a": {"title": "Boots", "price": 40.0}})
>>> p["message"], p["items"]
('Boots now 40.0', [{'item_id': 'a', 'title': 'Boots', 'price': 40.0}])
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from triggers.campaigns import Campaign

HOUR_MS = 3_600_000
TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
ITEM_FIELDS = frozenset({"item.id", "item.title", "item.price", "items"})


def _resolve(context: Mapping[str, Any], path: str) -> Any:
    node: Any = context
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    return node


def build_promotion(
    promotion_id: str,
    campaign_id: str,
    campaign: Campaign,
    *,
    trigger: str,
    user_id: str,
    items: Sequence[str],
    context: Mapping[str, Any],
    now: int,
) -> dict[str, Any]:
    """The promotion, its message filled from the profile (``context``); item fields stay
    until :func:`fill_items` knows the items."""
    action = campaign.action
    coupon = action.coupon_code
    if coupon and action.unique_coupon:
        coupon = f"{coupon}-{promotion_id[:8].upper()}"
    values = {"user_id": user_id, "coupon_code": coupon or "", "campaign": campaign.name}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ITEM_FIELDS:
            return match.group(0)
        value = values[name] if name in values else _resolve(context, name)
        return str(value)

    return {
        "promotion_id": promotion_id,
        "campaign_id": campaign_id,
        "trigger": trigger,
        "user_id": user_id,
        "message": TEMPLATE_FIELD.sub(fill, action.message),
        "discount_percent": action.discount_percent,
        "discount_amount": action.discount_amount,
        "coupon_code": coupon,
        "priority": campaign.guardrails.priority,
        "items": [{"item_id": item} for item in items],
        "created_at": now,
        "expires_at": now + int(action.expires_in_hours * HOUR_MS),
    }


def fill_items(promotion: dict[str, Any], records: Mapping[str, Mapping[str, Any]]) -> None:
    """Complete the promotion's items from catalog records (title, price) and fill
    ``{item.*}`` (the first item) and ``{items}`` (all titles) in its message."""
    items = [{**item, **records.get(item["item_id"], {})} for item in promotion["items"]]
    promotion["items"] = items
    first = items[0] if items else {}
    values = {
        "item.id": first.get("item_id", ""),
        "item.title": first.get("title") or first.get("item_id", ""),
        "item.price": first.get("price", ""),
        "items": ", ".join(str(i.get("title") or i["item_id"]) for i in items),
    }
    promotion["message"] = TEMPLATE_FIELD.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0),
        promotion["message"],
    )


def promotion_message(topic: str, promotion: dict[str, Any]) -> tuple[str, bytes, bytes]:
    return topic, promotion["user_id"].encode(), orjson.dumps(promotion)
