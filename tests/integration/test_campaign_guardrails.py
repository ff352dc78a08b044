"""Guardrails on the real Redis with several concurrent workers, and triggers that need
Redis reads (price drop, birthday, recommended items) through the real worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from currents import keys
from tests.integration.conftest import Engine, Servers, poll
from tests.integration.test_campaign_triggers import promotions
from triggers.reserve import Request, Reserver


def run_workers(
    servers: Servers, batches: list[list[Request]], daily_cap: int = 3
) -> dict[str, str]:
    """Each batch reserved by its own "worker" (its own connection pool), concurrently."""

    async def main() -> dict[str, str]:
        clients = [aioredis.Redis.from_url(servers.redis_url) for _ in batches]
        try:
            answers = await asyncio.gather(
                *(
                    Reserver(client, daily_cap).reserve(batch)
                    for client, batch in zip(clients, batches, strict=True)
                )
            )
        finally:
            for client in clients:
                await client.aclose()
        refused: dict[str, str] = {}
        for answer in answers:
            refused.update(answer)
        return refused

    return asyncio.run(main())


def request(user: str, campaign: str, pid: str, **limits: Any) -> Request:
    return Request(
        user,
        campaign,
        pid,
        int(time.time() * 1000),
        limits.get("window_ms", 3_600_000),
        limits.get("cap", 1),
        limits.get("budget"),
    )


def test_budget_never_exceeded_by_concurrent_workers(servers: Servers, unique: str) -> None:
    campaign = f"budget-{unique}"
    batches = [
        [request(f"u{w}-{i}-{unique}", campaign, f"p{w}-{i}", budget=25) for i in range(40)]
        for w in range(4)
    ]
    for _ in range(3):  # and again: retried batches are idempotent
        refused = run_workers(servers, batches)
        granted = [r for batch in batches for r in batch if r.promotion_id not in refused]
        assert len(granted) == 25
        assert set(refused.values()) == {"budget_exhausted"}
    client = redis.Redis.from_url(servers.redis_url)
    assert client.scard(keys.campaign_budget(campaign)) == 25
    # A refused budget released the cap it had reserved: no phantom sends.
    refused_one = next(r for b in batches for r in b if r.promotion_id in refused)
    assert client.zcard(keys.user_campaign_sends(refused_one.user_id)) == 0


def test_caps_hold_when_workers_race_for_one_user(servers: Servers, unique: str) -> None:
    user = f"raced-{unique}"
    # Eight workers each decide a different promotion of one campaign for the same user.
    batches = [[request(user, "c", f"p{w}", cap=2)] for w in range(8)]
    refused = run_workers(servers, batches)
    assert len(refused) == 6 and set(refused.values()) == {"capped"}
    # The daily cap across campaigns: 3 by default, whatever the campaigns' own caps.
    batches = [[request(user, f"other{w}", f"q{w}", cap=5)] for w in range(8)]
    refused = run_workers(servers, batches)
    assert len(refused) == 7


def catalog(item: str, price: float, title: str, ts: int) -> dict[str, Any]:
    return {
        "event_id": f"{item}-{ts}",
        "type": "item_upserted",
        "timestamp": ts,
        "properties": {"item_id": item, "title": title, "price": price, "category": "shoes"},
    }


def test_price_drop_and_stats_through_the_worker(engine: Engine, unique: str) -> None:
    campaign_id = f"drop-{unique}"
    item = f"boots-{unique}"
    body = {
        "name": "Price drop",
        "trigger": {"type": "price_drop"},
        "action": {"message": "{item.title} now {item.price}", "coupon_code": "DROP"},
        "guardrails": {"holdout": 0, "budget": 1},
    }
    with engine.client("admin") as client:
        assert client.put(f"/v1/campaigns/{campaign_id}", json=body).status_code == 201
    try:
        time.sleep(1.5)
        now = int(time.time() * 1000)
        viewers = [f"viewer{n}-{unique}" for n in range(2)]
        events: list[dict[str, Any]] = [catalog(item, 100.0, "Trail boots", now)]
        for n, user in enumerate(viewers):
            events += [
                {
                    "event_id": f"{user}-id",
                    "type": "identify",
                    "user_id": user,
                    "timestamp": now + n,
                    "properties": {"traits": {"marketing_consent": True}},
                },
                {
                    "event_id": f"{user}-view",
                    "type": "product_viewed",
                    "user_id": user,
                    "timestamp": now + 10 + n,
                    "properties": {"product_id": item, "category": "shoes"},
                },
            ]
        assert engine.post_events(events).status_code == 202
        store = engine.redis()
        poll(
            lambda: store.zcard(keys.item_watchers(item)) == 2,
            timeout_s=15,
            what="the item's viewers index",
        )
        assert (
            engine.post_events([catalog(item, 79.5, "Trail boots", now + 100)]).status_code == 202
        )
        found = poll(
            lambda: [p for u in viewers for p in promotions(engine, u)],
            timeout_s=15,
            what="the price-drop promotion",
        )
        time.sleep(1.5)  # both viewers' timers were swept: the budget of 1 holds
        found = [p for u in viewers for p in promotions(engine, u)]
        assert len(found) == 1
        assert found[0]["message"] == "Trail boots now 79.5"
        assert found[0]["items"] == [{"item_id": item, "title": "Trail boots", "price": 79.5}]
        with engine.client("admin") as client:
            stats = client.get(f"/v1/campaigns/{campaign_id}/stats").json()
            assert client.get(f"/v1/campaigns/none-{unique}/stats").status_code == 404
        assert stats["sends"] == 1
        assert stats["guardrails"]["budget_exhausted"] == 1
        # Erasure takes the shopper out of every item's watchers, and only them.
        with engine.client("admin") as client:
            assert client.delete(f"/v1/users/{viewers[0]}").status_code == 200
        watching = {m.decode() for m in store.zrange(keys.item_watchers(item), 0, -1)}
        assert watching == {viewers[1]}
        with engine.redis() as r:
            held = [
                k
                for k in r.scan_iter(match=keys.item_watchers_pattern())
                if r.zscore(k, viewers[0]) is not None
            ]
        assert held == []
    finally:
        with engine.client("admin") as client:
            client.delete(f"/v1/campaigns/{campaign_id}")


def test_recommended_items_in_the_promotion(engine: Engine, unique: str) -> None:
    campaign_id = f"recs-{unique}"
    body = {
        "name": "Recommended",
        "trigger": {"type": "event", "event_type": "product_shared"},
        "action": {"message": "For you: {items}", "recommendations": 2},
        "guardrails": {"holdout": 0},
    }
    with engine.client("admin") as client:
        assert client.put(f"/v1/campaigns/{campaign_id}", json=body).status_code == 201
    try:
        time.sleep(1.5)
        now = int(time.time() * 1000)
        items = [f"rec{n}-{unique}" for n in range(3)]
        events = [catalog(item, 10.0 + n, f"Item {n}", now) for n, item in enumerate(items)]
        for n in range(6):  # shoppers who view the items together
            events += [
                {
                    "event_id": f"s{n}-{item}-{unique}",
                    "type": "product_viewed",
                    "user_id": f"s{n}-{unique}",
                    "session_id": f"s{n}",
                    "timestamp": now + 10 * k,
                    "properties": {"product_id": item, "category": "shoes"},
                }
                for k, item in enumerate(items)
            ]
        assert engine.post_events(events).status_code == 202
        time.sleep(1.0)
        user = f"sharer-{unique}"
        events = [
            {
                "event_id": f"{user}-id",
                "type": "identify",
                "user_id": user,
                "timestamp": now + 100,
                "properties": {"traits": {"marketing_consent": True}},
            },
            {
                "event_id": f"{user}-view",
                "type": "product_viewed",
                "user_id": user,
                "timestamp": now + 101,
                "properties": {"product_id": items[0], "category": "shoes"},
            },
        ]
        assert engine.post_events(events).status_code == 202
        time.sleep(1.0)
        share = {
            "event_id": f"{user}-share",
            "type": "product_shared",
            "user_id": user,
            "timestamp": now + 200,
            "properties": {"product_id": items[0]},
        }
        assert engine.post_events([share]).status_code == 202
        (promotion,) = poll(
            lambda: promotions(engine, user), timeout_s=15, what="the promotion with items"
        )
        recommended = promotion["items"]
        assert len(recommended) == 2
        # Viewed together with items[0]: the co-occurrence recommender proposes the others
        # (other tests' popular items may compete; ours carry their catalog facts).
        ours = [i for i in recommended if i["item_id"] in items]
        assert ours
        for item in ours:
            n = items.index(item["item_id"])
            assert item == {"item_id": items[n], "title": f"Item {n}", "price": 10.0 + n}
        titles = ", ".join(i.get("title") or i["item_id"] for i in recommended)
        assert promotion["message"] == f"For you: {titles}"
    finally:
        with engine.client("admin") as client:
            client.delete(f"/v1/campaigns/{campaign_id}")


def test_birthday_armed_for_existing_users_when_the_campaign_appears(
    engine: Engine, unique: str
) -> None:
    from datetime import UTC, datetime

    today = datetime.now(UTC)
    user = f"bday-{unique}"
    identify = {
        "event_id": f"{user}-id",
        "type": "identify",
        "user_id": user,
        "timestamp": int(today.timestamp() * 1000),
        "properties": {
            "traits": {"marketing_consent": True, "birthday": today.strftime("1990-%m-%d")}
        },
    }
    assert engine.post_events([identify]).status_code == 202
    with engine.client("admin") as client:
        poll(
            lambda: client.get(f"/v1/users/{user}/profile").status_code == 200,
            timeout_s=15,
            what="the profile",
        )
        campaign_id = f"bday-{unique}"
        body = {
            "name": "Birthday",
            "trigger": {"type": "birthday"},
            "action": {"message": "Happy birthday {user_id}", "discount_amount": 5},
            "guardrails": {"holdout": 0},
        }
        assert client.put(f"/v1/campaigns/{campaign_id}", json=body).status_code == 201
    try:
        (promotion,) = poll(
            lambda: promotions(engine, user), timeout_s=20, what="the birthday promotion"
        )
        assert promotion["trigger"] == "birthday"
        assert promotion["message"] == f"Happy birthday {user}"
        rearmed = engine.redis().zscore(keys.campaign_timers(), f"{campaign_id}|{user}")
        day = 28 if (today.month, today.day) == (2, 29) else today.day  # not a leap year
        next_year = datetime(today.year + 1, today.month, day, tzinfo=UTC)
        assert rearmed == next_year.timestamp() * 1000
    finally:
        with engine.client("admin") as client:
            client.delete(f"/v1/campaigns/{campaign_id}")
