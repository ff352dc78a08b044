"""Campaign measurement: exposures, engagement, attributed orders and uplift.

An exposure is a promotion sent (treatment) or withheld from a holdout user ("would have
received"). It is kept in the user's ``campaign_arms`` as ``<arm>|<exposed at ms>|<0|1>``
(the last field: converted already). An order within the attribution window after the
exposure converts it once and adds its revenue to the arm; views, clicks and coupon
redemptions are counted per campaign. Counters live in ``keys.campaign_stats``.

>>> stats = campaign_stats({"sent": 200, "holdout": 100, "treatment:conversions": 30,
...                         "holdout:conversions": 10, "treatment:revenue_cents": 123456})
>>> stats["treatment"]["conversion_rate"], stats["holdout"]["conversion_rate"]
(0.15, 0.1)
>>> stats["uplift"]["value"], stats["uplift"]["ci95"]
(0.05, [-0.026852, 0.126852])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from currents import keys
from currents.writes import HashIncr, Write
from schemas.events import Event, prop
from schemas.profile import UserState

ENGAGEMENT = {
    "promotion_viewed": "views",
    "promotion_clicked": "clicks",
    "coupon_redeemed": "redemptions",
}
ARMS = ("treatment", "holdout")
Z95 = 1.959964


def parse_arm(record: str) -> tuple[str, int | None, bool]:
    """``(arm, exposed at, converted)`` of a ``campaign_arms`` value.

    >>> parse_arm("holdout"), parse_arm("treatment|1000|1")
    (('holdout', None, False), ('treatment', 1000, True))
    """
    arm, _, rest = record.partition("|")
    if not rest:
        return arm, None, False
    exposed, _, converted = rest.partition("|")
    return arm, int(exposed), converted == "1"


def arm_record(arm: str, exposed: int | None, converted: bool = False) -> str:
    return arm if exposed is None else f"{arm}|{exposed}|{int(converted)}"


def expose(state: UserState, campaign_id: str, arm: str, now: int) -> None:
    """A new exposure of ``arm``: the attribution window starts now."""
    state.campaign_arms[campaign_id] = arm_record(arm, now)


def campaign_of(event: Event, state: UserState) -> str | None:
    """The campaign an engagement event refers to (directly, or via its promotion)."""
    props = event.props
    if prop(props, "campaign_id"):
        return str(props.campaign_id)
    promotion_id = prop(props, "promotion_id")
    coupon = prop(props, "coupon_code")
    for promotion in reversed(state.promotions):
        if (promotion_id and promotion["promotion_id"] == promotion_id) or (
            coupon and promotion.get("coupon_code") == coupon
        ):
            return str(promotion["campaign_id"])
    return None


def measure(event: Event, state: UserState, window_ms: int) -> list[Write]:
    """Counter writes for one folded event (engagement, attributed orders)."""
    metric = ENGAGEMENT.get(event.type)
    if metric is not None:
        campaign = campaign_of(event, state)
        return [HashIncr(keys.campaign_stats(campaign), metric, 1)] if campaign else []
    if event.type != "order_completed":
        return []
    writes: list[Write] = []
    revenue_cents = round(event.props.revenue * 100)
    for campaign, record in sorted(state.campaign_arms.items()):
        arm, exposed, converted = parse_arm(record)
        if exposed is None or not 0 <= event.ts - exposed <= window_ms:
            continue
        stats = keys.campaign_stats(campaign)
        writes.append(HashIncr(stats, f"{arm}:orders", 1))
        writes.append(HashIncr(stats, f"{arm}:revenue_cents", revenue_cents))
        if not converted:
            writes.append(HashIncr(stats, f"{arm}:conversions", 1))
            state.campaign_arms[campaign] = arm_record(arm, exposed, True)
    return writes


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def campaign_stats(raw: Mapping[str, int]) -> dict[str, Any]:
    """The public stats of one campaign from its counters."""
    exposures = {"treatment": raw.get("sent", 0), "holdout": raw.get("holdout", 0)}
    arms: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        n = exposures[arm]
        conversions = raw.get(f"{arm}:conversions", 0)
        arms[arm] = {
            "exposures": n,
            "conversions": conversions,
            "conversion_rate": _rate(conversions, n),
            "orders": raw.get(f"{arm}:orders", 0),
            "revenue": raw.get(f"{arm}:revenue_cents", 0) / 100,
        }
    treated, held = arms["treatment"], arms["holdout"]
    uplift: dict[str, Any] = {"value": None, "ci95": None}
    if treated["exposures"] and held["exposures"]:
        p_t, p_h = (
            treated["conversions"] / treated["exposures"],
            held["conversions"] / held["exposures"],
        )
        se = math.sqrt(p_t * (1 - p_t) / treated["exposures"] + p_h * (1 - p_h) / held["exposures"])
        value = p_t - p_h
        uplift = {
            "value": round(value, 6),
            "ci95": [round(value - Z95 * se, 6), round(value + Z95 * se, 6)],
        }
    sends = exposures["treatment"]
    return {
        "sends": sends,
        "views": raw.get("views", 0),
        "clicks": raw.get("clicks", 0),
        "redemptions": raw.get("redemptions", 0),
        "conversion_rate": treated["conversion_rate"],
        "revenue": treated["revenue"],
        "treatment": treated,
        "holdout": held,
        "uplift": uplift,
        "guardrails": {
            name: raw.get(name, 0)
            for name in ("no_consent", "capped", "budget_exhausted", "deferred")
        },
    }
