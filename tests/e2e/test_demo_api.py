"""The read endpoints the demo pages use, against the same `currents up --demo`: the catalog
listing, the non-PII profile summary and the dashboard's admin data."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Demo
from tests.integration.conftest import poll

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return int(time.time() * 1000)


def event(event_type: str, properties: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": event_type,
        "timestamp": now_ms(),
        "properties": properties,
        **envelope,
    }


def test_catalog_pages_one_category_in_price_order(demo: Demo) -> None:
    category = "e2e-" + uuid.uuid4().hex[:8]
    prices = {"a": 30.0, "b": 10.0, "c": 50.0, "d": 20.0, "e": 40.0}
    items = [
        event(
            "item_upserted",
            {
                "item_id": f"{category}-{name}",
                "title": f"Item {name}",
                "category": category,
                "brand": "acme",
                "price": price,
                "in_stock": name != "e",
            },
        )
        for name, price in prices.items()
    ]
    with demo.as_page() as client:
        assert client.post("/v1/events", json=items).status_code == 202
        poll(
            lambda: client.get("/v1/items", params={"category": category}).json()["total"] == 5,
            timeout_s=10,
            what="the upserted items in the catalog",
        )
        pages, offset = [], 0
        while offset is not None:
            body = client.get(
                "/v1/items", params={"category": category, "limit": 2, "offset": offset}
            ).json()
            pages.append([item["item_id"][-1] for item in body["items"]])
            offset = body["next_offset"]
        assert pages == [["b", "d"], ["a", "e"], ["c"]]
        assert category in body["categories"]
        first = client.get("/v1/items", params={"category": category, "limit": 1}).json()
        assert first["items"] == [
            {
                "item_id": f"{category}-b",
                "title": "Item b",
                "category": category,
                "brand": "acme",
                "price": 10.0,
                "in_stock": True,
            }
        ]
        last = client.get("/v1/items", params={"category": category, "offset": 3}).json()
        assert [i["in_stock"] for i in last["items"]] == [False, True]  # e (40), c (50)
        everything = client.get("/v1/items", params={"limit": 200}).json()
        assert everything["total"] >= 505 and len(everything["items"]) == 200
        for bad in ({"limit": 201}, {"limit": 0}, {"offset": -1}):
            assert client.get("/v1/items", params=bad).status_code == 422, bad


def test_summary_is_the_profile_without_personal_data(demo: Demo) -> None:
    user = "e2e-summary-" + uuid.uuid4().hex[:8]
    who = {"user_id": user, "session_id": "s-1", "channel": "web"}
    events = [
        event("identify", {"traits": {"age_band": "25-34", "region": "DE-BE"}}, **who),
        event("product_viewed", {"product_id": "sku-00001", "category": "books"}, **who),
        event("product_added", {"product_id": "sku-00001", "price": 25.0, "quantity": 2}, **who),
        event(
            "order_completed",
            {
                "order_id": "o-" + user,
                "products": [{"product_id": "sku-00002", "price": 60.0, "quantity": 1}],
                "revenue": 60.0,
                "currency": "EUR",
            },
            **who,
        ),
    ]
    with demo.as_page() as client:
        assert client.get(f"/v1/users/{user}/summary").status_code == 404
        assert client.post("/v1/events", json=events).status_code == 202

        def summary() -> dict[str, Any] | None:
            response = client.get(f"/v1/users/{user}/summary")
            ok = response.status_code == 200 and response.json()["rfm"]["frequency"] == 1
            return response.json() if ok else None

        body = poll(summary, timeout_s=10, what="the shopper's summary")
    with demo.admin() as admin:
        profile = admin.get(f"/v1/users/{user}/profile").json()
    assert body["cart_items"] == 2 and body["cart_value"] == 50.0
    timeless = {"recency_days"}  # grows with the clock between the two reads
    rfm = {k: v for k, v in body["rfm"].items() if k not in timeless}
    assert rfm == {k: v for k, v in profile["rfm"].items() if k not in timeless}
    assert (rfm["frequency"], rfm["monetary"], rfm["r"]) == (1, 60.0, 5)
    assert body["rfm"]["recency_days"] < 1
    assert (body["tier"], body["lifecycle"]) == (profile["tier"], profile["lifecycle"])
    top = sorted(profile["affinities"]["category"].items(), key=lambda kv: -kv[1])[:5]
    assert body["top_categories"] == [{"category": c, "score": s} for c, s in top]
    assert set(body) == {
        "user_id",
        "tier",
        "lifecycle",
        "top_categories",
        "rfm",
        "cart_items",
        "cart_value",
    }
    assert "DE-BE" not in str(body) and "25-34" not in str(body)


def test_dashboard_data_is_admin_only(demo: Demo) -> None:
    with demo.as_page() as client:
        assert client.get("/v1/dashboard").status_code == 403
    with demo.admin() as admin:
        body = admin.get("/v1/dashboard").json()
    lag = body["consumer_lag"]
    assert set(lag["partitions"]) == {"0", "1", "2", "3"}
    assert lag["total"] == sum(lag["partitions"].values()) and lag["total"] >= 0
    assert {"cart-abandonment", "welcome", "win-back"} <= {c["id"] for c in body["campaigns"]}
    # The synthetic shoppers' first visits go through the welcome campaign's guardrails.
    welcome = next(c for c in body["campaigns"] if c["id"] == "welcome")["stats"]
    assert sum(welcome.get(k, 0) for k in ("sent", "holdout", "no_consent")) >= 1, welcome
    assert {s["name"] for s in body["segments"]} >= {"cart-holders", "high-value"}
    (experiment,) = [e for e in body["experiments"] if e["name"] == "demo-blend"]
    assert [v["variant"] for v in experiment["variants"]] == ["control", "session-boost"]
