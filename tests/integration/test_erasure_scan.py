"""After `DELETE /v1/users/{id}`, the shopper's id is stored nowhere in Redis.

One shopper is given every footprint the engine can make: views (price-drop watchers),
a cart and an order, a segment, a pending campaign timer, a sent promotion and a holdout
exposure, an experiment's impression and click, served-recommendation records, and an
identify with traits. Then they are erased, the worker's second pass lands, and the
whole keyspace is read: every key name, and every member, field and value of every
type, the engine's own blobs decompressed. The raw id must appear nowhere."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from currents.buckets import bucket
from currents.partitioning import partition_for
from currents.slate import decode_slate
from schemas.profile import blob_json
from tests.integration.conftest import Engine, poll
from tests.integration.test_campaign_triggers import promotions


def values_of(store: redis.Redis, key: bytes) -> Iterator[bytes]:
    """Everything a key holds, as bytes: its members, fields and values."""
    kind = store.type(key).decode()
    if kind == "string":
        raw = store.get(key)
        if raw is not None:
            yield raw
    elif kind == "hash":
        for field, value in store.hgetall(key).items():
            yield field
            yield value
    elif kind == "zset":
        yield from store.zrange(key, 0, -1)
    elif kind == "set":
        yield from store.smembers(key)
    elif kind == "list":
        yield from store.lrange(key, 0, -1)
    elif kind == "stream":
        for _, fields in store.xrange(key):
            for field, value in fields.items():
                yield field
                yield value


def decoded(raw: bytes) -> list[bytes]:
    """``raw`` and whatever the engine's own encodings inside it decode to."""
    found = [raw]
    for decode in (blob_json, zlib.decompress, lambda b: repr(decode_slate(b)).encode()):
        try:
            found.append(decode(raw))
        except Exception:  # not that encoding: each blob is tried with every decoder
            continue
    return found


def event(kind: str, user: str, n: int, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"{user}-{kind}-{n}",
        "type": kind,
        "user_id": user,
        "timestamp": int(time.time() * 1000) + n,
        "properties": properties,
    }


# Where a shopper's id is stored before erasure (the last part of each key's name).
FOOTPRINTS = {"profile", "slate", "mf", "members", "watchers", "timers", "sweep", "sends"}


def held_out_user(holdout_campaign: str) -> str:
    """A fresh id that the 50 % holdout of ``holdout_campaign`` holds out."""
    while True:
        user = f"gdpr-{uuid.uuid4().hex[:12]}"
        if bucket(f"campaign:{holdout_campaign}", user) < 0.5:
            return user


@pytest.mark.timeout(180)
def test_no_trace_of_an_erased_shopper_anywhere_in_redis(engine: Engine, unique: str) -> None:
    item, other = f"scan-a-{unique}", f"scan-b-{unique}"
    campaigns = {
        f"drop-{unique}": {"trigger": {"type": "price_drop"}, "guardrails": {"holdout": 0}},
        f"share-{unique}": {
            "trigger": {"type": "event", "event_type": "product_shared"},
            "guardrails": {"holdout": 0},
        },
        f"fav-{unique}": {
            "trigger": {"type": "event", "event_type": "product_favorited"},
            "guardrails": {"holdout": 0.5},
        },
        f"cart-{unique}": {
            "trigger": {"type": "cart_abandoned", "delay_minutes": 60},
            "guardrails": {"holdout": 0},
        },
    }
    segment, experiment = f"scan{unique}", f"scan-{unique}"
    user = held_out_user(f"fav-{unique}")
    with engine.client("admin") as admin:
        for cid, body in campaigns.items():
            body |= {"name": cid, "action": {"message": "for you"}}
            assert admin.put(f"/v1/campaigns/{cid}", json=body).status_code == 201
        condition = {"condition": "affinity.category.shoes >= 0.1"}
        assert admin.put(f"/v1/segments/{segment}", json=condition).status_code in (200, 201)
        variants = {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
        assert admin.put(f"/v1/experiments/{experiment}", json=variants).status_code == 200
    try:
        time.sleep(1.5)  # every process reloads campaigns and experiments within a second
        now = int(time.time() * 1000)
        catalog = [
            {
                "event_id": f"up-{i}-{unique}",
                "type": "item_upserted",
                "timestamp": now,
                "properties": {"item_id": i, "title": i, "category": "shoes", "price": 20.0},
            }
            for i in (item, other)
        ]
        traits = {"marketing_consent": True, "first_name": "Ada", "plan": "gold"}
        footprints = [
            event("identify", user, 0, traits=traits),
            event("product_viewed", user, 1, product_id=item, category="shoes", price=20.0),
            event("product_viewed", user, 2, product_id=other, category="shoes", price=20.0),
            event(
                "order_completed",
                user,
                3,
                order_id=f"o-{unique}",
                products=[{"product_id": other, "price": 20.0, "quantity": 1}],
                revenue=20.0,
                currency="EUR",
            ),
            # After the order, which would cancel the cart-abandonment timer.
            event("product_added", user, 4, product_id=item, price=20.0, quantity=1),
            event("product_shared", user, 5, product_id=item),
            event("product_favorited", user, 6, product_id=item),
        ]
        assert engine.post_events(catalog + footprints).status_code == 202
        poll(lambda: promotions(engine, user) or None, timeout_s=30, what="the promotion sent")
        with engine.client("read") as reader:
            served = [reader.get(f"/v1/users/{user}/recommendations").json() for _ in range(2)]
        rec = served[0]["recommendation_id"]
        time.sleep(0.3)  # the served list is recorded just after the answer
        shown = [
            event("recommendation_shown", user, 7, recommendation_id=rec, item_ids=[item]),
            event("product_clicked", user, 8, product_id=item, recommendation_id=rec),
        ]
        assert engine.post_events(shown).status_code == 202
        store = engine.redis()
        raw_id = user.encode()

        def holders() -> set[str]:
            """The kinds of key (the name's last part) holding the id, tagged or not."""
            return {
                k.decode().rsplit(":", 1)[-1]
                for k in store.scan_iter()
                if raw_id in k or any(raw_id in v for v in values_of(store, k))
            }

        def footprint_everywhere() -> bool | None:
            with engine.client("admin") as admin:
                profile = admin.get(f"/v1/users/{user}/profile").json()
            done = profile.get("counts", {}).get("product_clicked") == 1
            return (done and holders() >= FOOTPRINTS) or None

        poll(
            footprint_everywhere,
            timeout_s=30,
            what=lambda: f"every footprint in Redis; held by {sorted(holders())}",
        )

        with engine.client("admin") as admin:
            assert admin.delete(f"/v1/users/{user}").status_code == 200
        # The worker's second pass: wait until an event behind the erasure on the same
        # partition is applied.
        partitions = engine.settings.events_partitions
        canary = next(
            c
            for c in (f"canary-{unique}-{n}" for n in range(10_000))
            if partition_for(c, partitions) == partition_for(user, partitions)
        )
        engine.post_events(event("product_viewed", canary, 9, product_id=item))
        with engine.client("admin") as admin:
            poll(
                lambda: admin.get(f"/v1/users/{canary}/profile").status_code == 200 or None,
                what="an event behind the erasure applied",
            )

        found = []
        for key in store.scan_iter():
            if raw_id in key:
                found.append((key, "key name"))
                continue
            for value in values_of(store, key):
                if any(raw_id in text for text in decoded(value)):
                    found.append((key, value[:80]))
        assert found == []
    finally:
        with engine.client("admin") as admin:
            for cid in campaigns:
                admin.delete(f"/v1/campaigns/{cid}")
            admin.delete(f"/v1/segments/{segment}")
            admin.delete(f"/v1/experiments/{experiment}")
