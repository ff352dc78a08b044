"""Recommenders through the real worker, broker, Redis and API: learning from clicks and
orders, business rules, diversity, experiments, and replicas agreeing."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx

from currents.embedded import die_with_parent, free_port
from tests.integration.conftest import REPO, Engine, poll
from tests.integration.test_pipeline import interaction, item, order, recommendations, teach_pairs


def catalog(engine: Engine, unique: str, spec: dict[str, str]) -> dict[str, str]:
    """Upsert items {name: category}; returns {name: item id}."""
    ids = {name: f"{name}-{unique}" for name in spec}
    events = []
    for name, category in spec.items():
        event = item(ids[name], category=f"{category}-{unique}")
        events.append(event)
    assert engine.post_events(events).status_code == 202
    return ids


def ids_of(body: dict[str, Any]) -> list[str]:
    return [entry["item_id"] for entry in body.get("items", [])]


def test_a_click_moves_bought_together_items_into_the_list(engine: Engine, unique: str) -> None:
    ids = catalog(engine, unique, {"x": "c1", "y": "c1"})
    x, y = ids["x"], ids["y"]
    for n in range(3):  # other shoppers buy x and y together
        engine.post_events(order(f"buyer-{n}-{unique}", [x, y]))
    with engine.client("read") as client:
        poll(
            lambda: (
                y
                in ids_of(
                    client.get(f"/v1/items/{x}/similar", params={"kind": "bought_together"}).json()
                )
            ),
            what="the orders to be learned",
        )
    user = f"clicker-{unique}"
    # By default a shopper's own viewed items may come back (exclude=purchased), and the
    # clicker's own view-then-click makes x "viewed together with" elsewhere: x itself
    # would lead. Among items not yet viewed, the bought-together item must.
    engine.post_events(interaction("product_viewed", user, f"elsewhere-{unique}"))
    before = poll(lambda: recommendations(engine, user, exclude="viewed"), what="a first answer")
    assert all("bought together" not in entry["reason"] for entry in before["items"])
    engine.post_events(interaction("product_clicked", user, x))

    seen: list[Any] = []

    def bought_together_first() -> dict[str, Any] | None:
        body = recommendations(engine, user, exclude="viewed")
        seen[:] = [(entry["item_id"], entry["reason"]) for entry in body["items"][:5]]
        first = body["items"][:1]
        return body if first and first[0]["reason"].startswith("bought together") else None

    body = poll(
        bought_together_first,
        what=lambda: f"a bought-together item to lead after clicking x (y={y}); last: {seen}",
    )
    assert body["items"][0] == {
        **body["items"][0],
        "item_id": y,
        "reason": f"bought together with Item {x}",
    }


def test_pinned_item_appears_at_its_slot_and_diversity_caps_hold(
    engine: Engine, unique: str
) -> None:
    spec = {f"i{k}": "c1" if k < 4 else "c2" for k in range(8)} | {"pin": "c3"}
    ids = catalog(engine, unique, spec)
    pairs = [(ids["i0"], ids[f"i{k}"]) for k in range(1, 8)]
    teach_pairs(engine, unique, pairs)
    user = f"pinned-{unique}"
    engine.post_events(interaction("product_viewed", user, ids["i0"]))
    poll(
        lambda: len(set(ids_of(recommendations(engine, user))) & set(ids.values())) >= 7,
        what="the co-viewed items in the list",
    )

    with engine.client("admin") as client:
        rule = {"kind": "pin", "item_id": ids["pin"], "slot": 2}
        assert client.put(f"/v1/rules/pin-{unique}", json=rule).status_code == 200
        try:
            body = poll(
                lambda: (
                    (b := recommendations(engine, user)) and ids_of(b)[1:2] == [ids["pin"]] and b
                ),
                what="the pinned item at slot 2",
            )
            assert body["items"][1]["reason"] == "featured"
        finally:
            assert client.delete(f"/v1/rules/pin-{unique}").status_code == 204
        assert client.put("/v1/rules/bad", json={"kind": "pin", "item_id": "x"}).status_code == 422

    categories = {ids[name]: category for name, category in spec.items()}
    with engine.client("read") as client:
        body = client.get(
            f"/v1/users/{user}/recommendations", params={"n": 10, "diversity": 2}
        ).json()
    mine = [categories[i] for i in ids_of(body) if i in categories]
    assert mine and max(mine.count(c) for c in set(mine)) <= 2
    with engine.client("read") as client:
        body = client.get(
            f"/v1/users/{user}/recommendations", params={"n": 10, "category": f"c2-{unique}"}
        ).json()
    assert ids_of(body) and all(categories.get(i) == "c2" for i in ids_of(body))


def test_two_api_processes_return_the_same_list(engine: Engine, unique: str) -> None:
    ids = catalog(engine, unique, {"a": "c1", "b": "c1", "c": "c2"})
    teach_pairs(engine, unique, [(ids["a"], ids["b"]), (ids["a"], ids["c"])])
    user = f"replica-{unique}"
    engine.post_events(interaction("product_viewed", user, ids["a"]))
    poll(lambda: ids["b"] in ids_of(recommendations(engine, user)), what="personalized list")
    port = free_port()
    env = {**engine.env, "CURRENTS_API_PORT": str(port)}
    second = subprocess.Popen(
        [sys.executable, "-m", "currents.cli", "api"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        other = f"http://127.0.0.1:{port}"
        poll(lambda: _status(other) == 200, what="the second API to be ready")

        def compare() -> bool:
            first = _items(engine.api_url, engine.keys["read"], user)
            replica = _items(other, engine.keys["read"], user)
            again = _items(engine.api_url, engine.keys["read"], user)
            return first == again == replica

        poll(compare, what="both replicas to agree on a settled state")
    finally:
        second.terminate()
        second.wait(15)


def _status(base: str) -> int:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _items(base: str, key: str, user: str) -> list[tuple[str, float, str]]:
    body = httpx.get(
        f"{base}/v1/users/{user}/recommendations", headers={"X-API-Key": key}, timeout=5
    ).json()
    return [(i["item_id"], i["score"], i["reason"]) for i in body["items"]]


def test_experiment_stats_count_feedback_by_variant(engine: Engine, unique: str) -> None:
    name = f"exp-{unique}"
    experiment = {
        "variants": [
            {"name": "control", "weight": 1},
            {"name": "mf-heavy", "weight": 1, "blend": {"mf": 1.0, "trending": 0.5}},
        ]
    }
    with engine.client("admin") as client:
        assert client.put(f"/v1/experiments/{name}", json=experiment).status_code == 200
    try:
        time.sleep(1.2)  # every replica reloads within a second
        user = f"exp-user-{unique}"
        body = recommendations(engine, user)
        rec = body["recommendation_id"]
        items = ids_of(body)[:2] or ["nothing"]
        time.sleep(0.3)  # the served list is recorded just after the answer
        engine.post_events(
            [
                {
                    "event_id": f"shown-{unique}",
                    "type": "recommendation_shown",
                    "user_id": user,
                    "timestamp": int(time.time() * 1000),
                    "properties": {"recommendation_id": rec, "item_ids": items},
                },
                {
                    "event_id": f"click-{unique}",
                    "type": "product_clicked",
                    "user_id": user,
                    "timestamp": int(time.time() * 1000) + 1,
                    "properties": {"product_id": items[0], "recommendation_id": rec},
                },
            ]
        )
        with engine.client("admin") as client:

            def counted() -> dict[str, Any] | None:
                stats = client.get(f"/v1/experiments/{name}/stats").json()
                rows = [v for v in stats["variants"] if v["impressions"]]
                return rows[0] if rows and rows[0]["clicks"] == 1 else None

            row = poll(counted, what="the impression and click in the stats")
        assert (row["impressions"], row["clicks"], row["ctr"]) == (1, 1, 1.0)
    finally:
        with engine.client("admin") as client:
            client.delete(f"/v1/experiments/{name}")
