from benchmarks.generator import SyntheticShop
from schemas.events import parse_event


def test_same_seed_same_events():
    a = SyntheticShop(users=20, items=60, seed=3)
    b = SyntheticShop(users=20, items=60, seed=3)
    assert a.catalog_events(0) == b.catalog_events(0)
    stream_a, stream_b = a.stream(0), b.stream(0)
    assert [next(stream_a) for _ in range(200)] == [next(stream_b) for _ in range(200)]


def test_generated_events_are_valid_and_follow_the_funnel():
    shop = SyntheticShop(users=50, items=120, seed=11)
    events = [next(shop.stream(0)) for _ in range(1)]
    stream = shop.stream(0)
    events = [next(stream) for _ in range(3000)]
    for raw in shop.catalog_events(0) + events:
        parse_event(raw)
    types = [e["type"] for e in events]
    assert (
        types.count("product_viewed")
        > types.count("product_added")
        > types.count("order_completed")
        > 0
    )


def test_planted_partner_structure_is_visible():
    shop = SyntheticShop(users=50, items=120, seed=5)
    stream = shop.stream(0)
    follows = hits = 0
    previous = None
    for raw in (next(stream) for _ in range(5000)):
        if raw["type"] != "product_viewed":
            previous = None
            continue
        item = int(raw["properties"]["product_id"].split("-")[1])
        if previous is not None:
            follows += 1
            hits += shop.partner[previous] == item
        previous = item
    assert hits / follows > 0.4


def test_warm_up_users_come_first_and_identified():
    shop = SyntheticShop(users=50, items=120, seed=2)
    stream = shop.stream(0, warm_up_users=3)
    users = []
    while len(set(users)) < 3:
        event = next(stream)
        users.append(event.get("user_id"))
    assert list(dict.fromkeys(users)) == ["user-00000", "user-00001", "user-00002"]
