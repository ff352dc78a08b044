"""Catalog text is data, never a template: items whose title, category and brand are
arbitrary Unicode (braces, quotes, format specifiers, right-to-left marks, 1 KB strings)
go through the real API and worker, and every recommendations and similar-items response
is a 200 with valid JSON that carries the text as it was sent.

A category of ``Kids {3-5}`` once made ``/similar?kind=content`` answer 500: reasons were
built with ``str.format`` on catalog strings. They are now a fixed prefix and the item
whose title completes it (``online_models/ranking.py``, ``serving/recommend.py``)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Engine, poll

TRICKY = [
    "Kids {3-5}",
    "{item}",
    "{0}",
    "{",
    "}}{{",
    "%s %d",
    "\u202eevil\u202c",
    'quote " and \\ backslash',
    "x" * 1024,
    "é" * 512,
    "\u0000nul",
    "emoji 🛒",
]
# Any text the event schema accepts: up to 1 KB, any code point JSON can carry.
texts = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=1024),
)


def item(item_id: str, title: str, category: str, brand: str, price: float) -> dict[str, object]:
    return {
        "event_id": f"up-{item_id}",
        "type": "item_upserted",
        "timestamp": "2026-11-22T10:00:00Z",
        "properties": {
            "item_id": item_id,
            "title": title,
            "category": category,
            "brand": brand,
            "price": price,
        },
    }


def shopper_event(kind: str, user: str, n: int, **properties: object) -> dict[str, object]:
    return {
        "event_id": f"{user}-{n}",
        "type": kind,
        "user_id": user,
        "timestamp": 1_796_000_000_000 + n * 1000,
        "properties": properties,
    }


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(title=texts, category=texts, brand=texts)
def test_any_catalog_text_is_served_as_data(
    engine: Engine, title: str, category: str, brand: str
) -> None:
    run = uuid.uuid4().hex[:10]
    user = f"text-{run}"
    items = [f"t-{run}-{i}" for i in range(3)]
    events: list[dict[str, object]] = [
        item(items[0], title, category, brand, 10.0),
        item(items[1], title + " 2", category, brand, 20.0),
        item(items[2], "plain", category, "other", 30.0),
    ]
    events += [
        shopper_event("product_viewed", user, n, product_id=i, category=category, price=10.0)
        for n, i in enumerate(items)
    ]
    events.append(
        shopper_event(
            "order_completed",
            user,
            9,
            order_id=f"o-{run}",
            products=[{"product_id": i, "price": 10.0, "quantity": 1} for i in items[:2]],
            revenue=20.0,
            currency="EUR",
        )
    )
    with engine.client("admin") as client:
        response = client.post("/v1/events", content=orjson.dumps(events))
        assert response.status_code == 202, response.text
        assert response.json()["rejected"] == []
        poll(
            lambda: (
                (r := client.get(f"/v1/users/{user}/profile")).status_code == 200
                and r.json()["counts"].get("order_completed") == 1
            ),
            timeout_s=30,
            what="the order applied",
        )
        paths = [
            f"/v1/users/{user}/recommendations?n=10",
            f"/v1/users/{user}/recommendations?n=10&exclude=none",
            f"/v1/users/{user}/recommendations?n=10&category={quote(category, safe='')}",
            f"/v1/users/{user}/recommendations?n=10&context_item={items[0]}",
        ]
        paths += [
            f"/v1/items/{items[0]}/similar?kind={kind}"
            for kind in ("all", "content", "bought_together", "viewed_together")
        ]
        served_titles: list[str] = []
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            body = orjson.loads(response.content)
            assert isinstance(body["items"], list)
            served_titles += [entry.get("reason", "") for entry in body["items"]]
        # The text came back as sent wherever a reason names an item or the category.
        named = [reason for reason in served_titles if title in reason or category in reason]
        assert named, served_titles
