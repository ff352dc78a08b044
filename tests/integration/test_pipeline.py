"""Events in through the API or the topic, through the real worker and Redis, out of the API."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson

from currents import keys
from schemas.profile import UserState
from tests.integration.conftest import Engine, poll


def NOW() -> int:
    return int(time.time() * 1000)


def item(item_id: str, *, in_stock: bool = True, category: str = "test") -> dict[str, Any]:
    return {
        "event_id": f"up-{item_id}-{in_stock}",
        "type": "item_upserted",
        "timestamp": NOW(),
        "properties": {
            "item_id": item_id,
            "title": f"Item {item_id}",
            "category": category,
            "brand": "b",
            "price": 10.0,
            "in_stock": in_stock,
        },
    }


def interaction(kind: str, user: str, product: str, event_id: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"product_id": product}
    if kind in {"product_added", "product_removed"}:
        properties |= {"price": 10.0, "quantity": 1}
    return {
        "event_id": event_id or f"{kind}-{user}-{product}-{time.monotonic_ns()}",
        "type": kind,
        "user_id": user,
        "session_id": "s",
        "timestamp": NOW(),
        "properties": properties,
    }


def order(user: str, products: list[str]) -> dict[str, Any]:
    return {
        "event_id": f"order-{user}-{time.monotonic_ns()}",
        "type": "order_completed",
        "user_id": user,
        "timestamp": NOW(),
        "properties": {
            "order_id": f"o-{time.monotonic_ns()}",
            "revenue": 10.0 * len(products),
            "currency": "EUR",
            "products": [{"product_id": p, "price": 10.0, "quantity": 1} for p in products],
        },
    }


def recommendations(engine: Engine, user: str, n: int = 10, **params: str | int) -> dict[str, Any]:
    with engine.client("read") as client:
        response = client.get(f"/v1/users/{user}/recommendations", params={"n": n, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def profile_counts(engine: Engine, user: str) -> dict[str, int]:
    with engine.redis() as r:
        return UserState.from_bytes(r.get(keys.user_profile(user))).counts


def teach_pairs(
    engine: Engine, unique: str, pairs: list[tuple[str, str]], shoppers: int = 3
) -> None:
    """Other shoppers view each pair together, so the pair co-occurs."""
    events = []
    for n in range(shoppers):
        for a, b in pairs:
            events += [
                interaction("product_viewed", f"teacher-{unique}-{n}", a),
                interaction("product_viewed", f"teacher-{unique}-{n}", b),
            ]
    assert engine.post_events(events).status_code == 202


def test_posted_events_personalize_that_users_recommendations(engine: Engine, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    user = f"u-{unique}"
    assert engine.post_events([item(a), item(b)]).status_code == 202
    teach_pairs(engine, unique, [(a, b)])
    cold = recommendations(engine, user)
    assert cold["personalized"] is False

    assert engine.post_events(interaction("product_viewed", user, a)).status_code == 202

    def personalized() -> dict[str, Any] | None:
        body = recommendations(engine, user)
        return body if body["personalized"] and body["items"][0]["item_id"] == b else None

    body = poll(personalized, what="b to lead the user's recommendations")
    assert body["items"][0]["reason"] == f"viewed together with Item {a}"
    assert body["user_id"] == user and len(body["recommendation_id"]) == 32


def test_purchased_items_disappear_from_recommendations(engine: Engine, unique: str) -> None:
    a, b, c = (f"{x}-{unique}" for x in "abc")
    user = f"buyer-{unique}"
    assert engine.post_events([item(a), item(b), item(c)]).status_code == 202
    teach_pairs(engine, unique, [(a, b), (a, c)])
    engine.post_events(interaction("product_viewed", user, a))
    poll(
        lambda: {i["item_id"] for i in recommendations(engine, user)["items"]} >= {b, c},
        what="b and c recommended",
    )
    engine.post_events(order(user, [b]))
    poll(
        lambda: b not in {i["item_id"] for i in recommendations(engine, user)["items"]},
        what="purchased b to leave the list",
    )
    assert c in {i["item_id"] for i in recommendations(engine, user)["items"]}


def test_out_of_stock_items_are_excluded(engine: Engine, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    user = f"u-{unique}"
    engine.post_events([item(a), item(b)])
    teach_pairs(engine, unique, [(a, b)])
    engine.post_events(interaction("product_viewed", user, a))
    poll(lambda: b in {i["item_id"] for i in recommendations(engine, user)["items"]}, what="b")
    later = item(b, in_stock=False)
    later["timestamp"] = NOW() + 1
    engine.post_events(later)
    # The API keeps item records cached for up to 30 s; the worker's announcement of the
    # change must evict b's record as soon as the change is in Redis.
    store = engine.redis()
    poll(lambda: store.hget(keys.item_record(b), "in_stock") == b"0", what="b's record updated")
    poll(
        lambda: b not in {i["item_id"] for i in recommendations(engine, user)["items"]},
        timeout_s=3.0,
        what="out-of-stock b to leave the list",
    )


def test_similar_items(engine: Engine, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    engine.post_events([item(a), item(b)])
    teach_pairs(engine, unique, [(a, b)])
    with engine.client("read") as client:
        body = poll(
            lambda: (
                (r := client.get(f"/v1/items/{a}/similar")).status_code == 200
                # Until the pairs are learned, only "also in <category>" items show.
                and any("together" in i["reason"] for i in r.json()["items"])
                and r.json()
            ),
            what="co-occurrence neighbours of a",
        )
        assert body["items"][0]["item_id"] == b
        assert client.get(f"/v1/items/nothing-{unique}/similar").status_code == 404
        assert (
            client.get(f"/v1/items/{a}/similar", params={"kind": "bought_together"}).json()["items"]
            == []
        )


def test_duplicate_event_id_is_counted_once(engine: Engine, unique: str) -> None:
    user = f"dup-{unique}"
    event = interaction("product_viewed", user, f"p-{unique}", event_id=f"same-{unique}")
    assert engine.post_events([event, event]).json()["accepted"] == 2
    assert engine.post_events(event).status_code == 202
    marker = interaction("product_clicked", user, f"p-{unique}")
    engine.post_events(marker)
    poll(lambda: profile_counts(engine, user).get("product_clicked"), what="marker event")
    assert profile_counts(engine, user) == {"product_viewed": 1, "product_clicked": 1}


def test_garbage_on_the_topic_goes_to_the_dlq_and_the_worker_keeps_going(
    engine: Engine, unique: str
) -> None:
    garbage = b"\x00\xffnot json " + unique.encode()
    invalid = orjson.dumps({"event_id": f"bad-{unique}", "type": "product_viewed"})
    wrong_type = orjson.dumps(
        {"event_id": f"x-{unique}", "type": "teleported", "user_id": "u", "timestamp": 1}
    )
    engine.produce([(b"k", garbage), (b"k", invalid), (b"k", b"[1, 2"), (b"k", wrong_type)])
    user = f"after-{unique}"
    engine.produce([(user.encode(), orjson.dumps(interaction("product_viewed", user, "p")))])
    poll(lambda: profile_counts(engine, user).get("product_viewed"), what="event after garbage")

    letters = [orjson.loads(v) for v in engine.consume_all(engine.settings.dlq_topic)]
    originals = {base64.b64decode(letter["original_b64"]): letter for letter in letters}
    assert originals[garbage]["error"].startswith("invalid JSON")
    assert originals[invalid]["error"] == "timestamp: Field required"
    assert originals[b"[1, 2"]["error"].startswith("invalid JSON")
    assert originals[wrong_type]["error"].startswith("type:")
    assert originals[garbage]["topic"] == engine.settings.events_topic

    with engine.client() as client:
        metrics = client.get("/metrics").text
    dlq_line = next(line for line in metrics.splitlines() if line.startswith("currents_dlq_total"))
    assert float(dlq_line.split()[-1]) >= 4


def test_events_produced_straight_to_the_topic_as_single_objects(
    engine: Engine, unique: str
) -> None:
    user = f"direct-{unique}"
    engine.produce([(user.encode(), orjson.dumps(interaction("product_favorited", user, "p")))])
    poll(lambda: profile_counts(engine, user).get("product_favorited") == 1, what="direct event")
