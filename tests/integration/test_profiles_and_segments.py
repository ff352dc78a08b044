"""Profiles and segments through the real API, broker, worker and Redis."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from profiles.rules import DAY_MS
from tests.integration.conftest import Engine, poll


def now_ms() -> int:
    return int(time.time() * 1000)


class Shopper:
    def __init__(self, engine: Engine, user: str) -> None:
        self.engine = engine
        self.user = user
        self.count = 0

    def event(self, kind: str, ts: int, **properties: Any) -> dict[str, Any]:
        self.count += 1
        envelope = {k: properties.pop(k) for k in ("session_id", "channel") if k in properties}
        return {
            "event_id": f"{self.user}-{self.count}",
            "type": kind,
            "user_id": self.user,
            "timestamp": ts,
            "properties": properties,
            **envelope,
        }

    def order(self, ts: int, order_id: str, lines: list[tuple[str, str, float]]) -> dict[str, Any]:
        products = [
            {"product_id": p, "category": c, "brand": "acme", "price": price, "quantity": 1}
            for p, c, price in lines
        ]
        return self.event(
            "order_completed",
            ts,
            order_id=f"{self.user}-{order_id}",
            products=products,
            revenue=sum(p for _, _, p in lines),
            currency="EUR",
        )

    def send(self, *events: dict[str, Any]) -> None:
        response = self.engine.post_events(list(events))
        assert response.status_code == 202, response.text
        assert response.json()["rejected"] == []

    def profile(self) -> dict[str, Any] | None:
        with self.engine.client("admin") as client:
            response = client.get(f"/v1/users/{self.user}/profile")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_for(self, kind: str, count: int) -> dict[str, Any]:
        return poll(
            lambda: (p := self.profile()) and p["counts"].get(kind) == count and p,
            what=f"{count} x {kind} in the profile",
        )


def test_posted_events_give_the_exact_profile(engine: Engine, unique: str) -> None:
    shopper = Shopper(engine, f"exact-{unique}")
    start = now_ms() - 38 * DAY_MS
    shopper.send(
        shopper.event(
            "identify",
            start,
            traits={"age_band": "35-44", "email": "a@b.c", "marketing_consent": True},
        ),
        shopper.event(
            "product_viewed",
            start + 1,
            product_id="tv",
            category="electronics",
            brand="acme",
            session_id="s1",
            channel="web",
        ),
        shopper.event(
            "product_added",
            start + 2,
            product_id="tv",
            category="electronics",
            brand="acme",
            price=700.0,
            quantity=1,
            session_id="s1",
            channel="web",
        ),
        shopper.order(
            start + 3, "o1", [("tv", "electronics", 700.0), ("cable", "electronics", 20.0)]
        ),
        shopper.event(
            "product_added",
            start + 10 * DAY_MS,
            product_id="book",
            category="books",
            brand="read",
            price=15.0,
            quantity=2,
            session_id="s2",
            channel="store",
        ),
        shopper.order(start + 10 * DAY_MS + 1, "o2", [("lamp", "home", 400.0)]),
        shopper.event(
            "order_refunded",
            start + 11 * DAY_MS,
            order_id=f"{shopper.user}-o2",
            revenue=100.0,
            currency="EUR",
        ),
        shopper.event("coupon_redeemed", start + 12 * DAY_MS, points_used=20),
    )
    profile = shopper.wait_for("coupon_redeemed", 1)
    assert profile["counts"] == {
        "coupon_redeemed": 1,
        "identify": 1,
        "order_completed": 2,
        "order_refunded": 1,
        "product_added": 2,
        "product_viewed": 1,
    }
    assert profile["rfm"]["frequency"] == 2
    assert profile["rfm"]["monetary"] == 1020.0  # 720 + 400 - 100
    assert profile["rfm"]["recency_days"] == pytest.approx(28.0, abs=0.01)
    assert (profile["rfm"]["r"], profile["rfm"]["f"], profile["rfm"]["m"]) == (4, 3, 5)
    assert profile["tier"] == "gold"
    assert profile["points"] == 720 + 400 - 100 - 20
    assert profile["lifecycle"] == "active"
    assert profile["sessions"] == 4  # s1; s2 ten days later; the refund; the coupon (days apart)
    assert profile["channel_preference"] == "omnichannel"
    assert profile["cart"] == {
        "items": [{"product_id": "book", "quantity": 2, "price": 15.0}],
        "value": 30.0,
    }
    assert profile["traits"] == {"age_band": "35-44", "marketing_consent": True}
    assert profile["spending"]["avg_price"] == pytest.approx((700 + 20 + 400) / 3, abs=1e-6)
    assert profile["spending"]["median_price"] == 400.0
    assert list(profile["affinities"]["category"]) == ["electronics", "home", "books"]
    assert sum(profile["affinities"]["category"].values()) == pytest.approx(1.0, abs=1e-6)

    with engine.client("admin") as client:
        assert client.get(f"/v1/users/nobody-{unique}/profile").status_code == 404
    with engine.client("read") as client:
        assert client.get(f"/v1/users/{shopper.user}/profile").status_code == 403


def segment_events(engine: Engine, user: str) -> list[tuple[str, str]]:
    values = engine.consume_all(engine.settings.segments_topic, timeout_s=2)
    events = [orjson.loads(v) for v in values]
    return [(e["type"], e["segment"]) for e in events if e["user_id"] == user]


def test_segment_enter_and_exit_events_reach_the_topic(engine: Engine, unique: str) -> None:
    name = f"gold-{unique}"
    with engine.client("admin") as client:
        response = client.put(
            f"/v1/segments/{name}", json={"condition": "tier in [gold, diamond] and rfm.m >= 4"}
        )
        assert response.status_code == 201, response.text
    shopper = Shopper(engine, f"seg-{unique}")
    time.sleep(1.5)  # the worker reloads definitions every second
    shopper.send(shopper.order(now_ms(), "big", [("ring", "jewellery", 1500.0)]))
    poll(
        lambda: ("segment_entered", name) in segment_events(engine, shopper.user),
        what="segment_entered on the topic",
    )
    assert name in (shopper.profile() or {})["segments"]

    shopper.send(
        shopper.event("order_refunded", now_ms(), order_id=f"{shopper.user}-big", currency="EUR")
    )
    poll(
        lambda: ("segment_exited", name) in segment_events(engine, shopper.user),
        what="segment_exited on the topic",
    )
    assert segment_events(engine, shopper.user) == [
        ("segment_entered", name),
        ("segment_exited", name),
    ]
    changes = [
        orjson.loads(v) for v in engine.consume_all(engine.settings.profile_changes_topic, 2)
    ]
    tiers = [(c["from"], c["to"]) for c in changes if c["user_id"] == shopper.user]
    assert tiers == [("basic", "gold"), ("gold", "basic")]


def test_time_alone_moves_a_silent_user_into_at_risk(engine: Engine, unique: str) -> None:
    name = f"risk-{unique}"
    with engine.client("admin") as client:
        assert (
            client.put(
                f"/v1/segments/{name}", json={"condition": "lifecycle == at_risk"}
            ).status_code
            == 201
        )
    shopper = Shopper(engine, f"silent-{unique}")
    time.sleep(1.5)
    # The last order turns 60 days old four seconds from now: no event will follow.
    shopper.send(shopper.order(now_ms() - 60 * DAY_MS + 4000, "o", [("x", "home", 10.0)]))
    first = shopper.wait_for("order_completed", 1)
    assert first["lifecycle"] == "active" and name not in first["segments"]
    poll(
        lambda: (shopper.profile() or {}).get("lifecycle") == "at_risk",
        timeout_s=15,
        what="the profile to read at_risk",
    )
    poll(
        lambda: name in (shopper.profile() or {})["segments"],
        timeout_s=15,
        what="the sweep to put the silent user into the at_risk segment",
    )


def test_invalid_definitions_are_422_with_the_position(engine: Engine) -> None:
    with engine.client("admin") as client:
        response = client.put("/v1/segments/bad", json={"condition": "tier == gold and foo > 1"})
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail["position"] == 17 and "unknown field 'foo'" in detail["error"]
        response = client.put("/v1/segments/bad", json={"condition": "rfm.m >= >= 4"})
        assert response.json()["detail"]["position"] == 9
        assert (
            client.put("/v1/segments/Bad Name!", json={"condition": "tier == gold"}).status_code
            == 422
        )
        assert client.delete("/v1/segments/never-existed").status_code == 404
    with engine.client("read") as client:
        assert client.get("/v1/segments").status_code == 403


def test_members_page_through_10000_without_duplicates_or_gaps(engine: Engine, unique: str) -> None:
    region = f"R{unique}"
    users = [f"m-{unique}-{i:05d}" for i in range(10_000)]
    events = [
        {
            "event_id": f"id-{u}",
            "type": "identify",
            "user_id": u,
            "timestamp": now_ms(),
            "properties": {"traits": {"region": region}},
        }
        for u in users
    ]
    for start in range(0, len(events), 500):
        assert engine.post_events(events[start : start + 500]).json()["accepted"] == 500
    name = f"region-{unique}"
    with engine.client("admin") as client:
        # Users exist before the segment: membership comes from the backfill.
        poll(
            lambda: client.get(f"/v1/users/{users[-1]}/profile").status_code == 200,
            timeout_s=60,
            what="the last of 10,000 profiles",
        )
        assert (
            client.put(
                f"/v1/segments/{name}", json={"condition": f'traits.region == "{region}"'}
            ).status_code
            == 201
        )
        poll(
            lambda: client.get(f"/v1/segments/{name}").json()["backfill"]["state"] == "done",
            timeout_s=60,
            what="the backfill to finish",
        )
        assert client.get(f"/v1/segments/{name}").json()["size"] == 10_000

        # Page while members keep changing: newcomers may or may not show, nobody repeats
        # and none of the original 10,000 is skipped.
        extra = [
            {
                "event_id": f"id-x{i}-{unique}",
                "type": "identify",
                "user_id": f"m-{unique}-x{i}",
                "timestamp": now_ms(),
                "properties": {"traits": {"region": region}},
            }
            for i in range(200)
        ]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 997} | ({"cursor": cursor} if cursor else {})
            body = client.get(f"/v1/segments/{name}/members", params=params).json()
            seen += body["members"]
            pages += 1
            if pages == 3:
                engine.post_events(extra)
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        assert set(users) <= set(seen)
        listing = {s["name"]: s for s in client.get("/v1/segments").json()["segments"]}
        assert listing[name]["size"] >= 10_000
        assert client.delete(f"/v1/segments/{name}").status_code == 204
        assert client.get(f"/v1/segments/{name}/members").status_code == 404
