"""Slates through the real worker, Redis and API: the worker ranks a shopper once their
events land, the API serves that slate, and erasure, opt-out and staleness behave."""

from __future__ import annotations

import time
from typing import Any

from currents import keys
from currents.slate import Slate, decode_slate, encode_slate
from schemas.profile import event_fingerprint
from tests.integration.conftest import Engine, poll
from tests.integration.test_pipeline import interaction, item, recommendations, teach_pairs


def _slate(engine: Engine, user: str) -> Any:
    with engine.redis() as r:
        raw = r.get(keys.user_slate(user))
    return decode_slate(raw) if raw else None


def _viewer_with_slate(engine: Engine, unique: str) -> tuple[str, str, Slate]:
    """A shopper who viewed a, whose slate (b first: a and b co-occur) has landed."""
    a, b = f"a-{unique}", f"b-{unique}"
    user = f"u-{unique}"
    engine.post_events([item(a), item(b)])
    teach_pairs(engine, unique, [(a, b)])
    engine.post_events(interaction("product_viewed", user, a))
    return user, b, poll(lambda: _slate(engine, user), what="a slate")


def _rewrite(engine: Engine, user: str, slate: Slate) -> None:
    with engine.redis() as r:
        r.set(keys.user_slate(user), encode_slate(slate), keepttl=True)


def test_a_shoppers_event_shows_in_the_slate_the_api_serves(engine: Engine, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    user = f"u-{unique}"
    assert engine.post_events([item(a), item(b)]).status_code == 202
    teach_pairs(engine, unique, [(a, b)])
    view = interaction("product_viewed", user, a)
    assert engine.post_events(view).status_code == 202
    wanted = event_fingerprint(view["event_id"])

    def served() -> dict[str, Any] | None:
        body = recommendations(engine, user)
        return body if body["source"] == "slate" and body["as_of"]["event"] == wanted else None

    body = poll(served, what="the view to show in the served slate")
    assert body["personalized"] is True
    assert body["items"][0]["item_id"] == b
    assert body["items"][0]["reason"] == f"viewed together with Item {a}"
    assert body["as_of"]["at"] == view["timestamp"]
    assert 0 <= body["slate_age_ms"] < 60_000
    slate = _slate(engine, user)
    assert slate is not None and slate.items[0] == b and slate.as_of_event == wanted


def test_strangers_get_the_shared_slate(engine: Engine, unique: str) -> None:
    a = f"a-{unique}"
    assert (
        engine.post_events([item(a), interaction("product_viewed", f"v-{unique}", a)]).status_code
        == 202
    )
    body = poll(
        lambda: (r := recommendations(engine, f"stranger-{unique}"))["source"] == "shared" and r,
        what="a shared slate for strangers",
    )
    assert body["personalized"] is False and body["as_of"] is None
    with engine.redis() as r:
        assert r.exists(keys.shared_slate("global", None))


def test_opt_out_and_erasure_remove_the_slate_at_once(engine: Engine, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    user, other = f"u-{unique}", f"w-{unique}"
    engine.post_events([item(a), item(b)])
    teach_pairs(engine, unique, [(a, b)])
    engine.post_events(
        [interaction("product_viewed", user, a), interaction("product_viewed", other, a)]
    )
    poll(lambda: _slate(engine, user) and _slate(engine, other), what="both slates")

    with engine.client("admin") as client:
        response = client.put(
            f"/v1/users/{user}/consent", json={"personalization": False, "marketing": False}
        )
        assert response.status_code == 202, response.text
        assert _slate(engine, user) is None  # deleted before the answer
        body = recommendations(engine, user)
        assert body["source"] != "slate"
        # Once the worker applied the consent, the shopper is served as a stranger.
        poll(
            lambda: (r := recommendations(engine, user))["personalized"] is False and r,
            what="the opted-out shopper to be served as a stranger",
        )
        assert _slate(engine, user) is None

        assert client.delete(f"/v1/users/{other}").status_code == 200
        assert _slate(engine, other) is None
    # The worker does not bring it back: the slate only lands while the profile exists.
    time.sleep(1.5)
    assert _slate(engine, other) is None
    assert recommendations(engine, other)["personalized"] is False


def test_a_stale_slate_is_served_and_ranked_again(engine: Engine, unique: str) -> None:
    user, b, slate = _viewer_with_slate(engine, unique)
    # Make it look ten minutes old: served as it is, and queued for its worker.
    slate.built_ms -= 600_000
    _rewrite(engine, user, slate)
    body = recommendations(engine, user)
    assert body["source"] == "slate" and body["slate_age_ms"] >= 600_000
    assert body["items"][0]["item_id"] == b
    poll(
        lambda: (s := _slate(engine, user)) and s.built_ms > slate.built_ms + 500_000,
        what="the worker to rank the stale slate again",
    )


def test_a_slate_behind_the_shoppers_events_is_served_and_ranked_again(
    engine: Engine, unique: str
) -> None:
    user, b, slate = _viewer_with_slate(engine, unique)
    # As if the worker had not yet ranked the shopper's newest event.
    slate.as_of_event = "0" * 12
    _rewrite(engine, user, slate)
    time.sleep(0.3)  # past CURRENTS_SLATE_MAX_BEHIND_MS
    # The API ranks nothing on the spot (CURRENTS_SLATE_CATCH_UP_PER_S is 0): it serves
    # the slate, saying which event it reflects, and asks the shopper's worker for a new
    # one.
    body = recommendations(engine, user)
    assert body["source"] == "slate" and body["as_of"]["event"] == slate.as_of_event
    assert body["items"][0]["item_id"] == b
    poll(
        lambda: (s := _slate(engine, user)) and s.as_of_event != slate.as_of_event,
        what="the worker to rank the behind slate again",
    )
    fresh = recommendations(engine, user)
    assert fresh["source"] == "slate" and fresh["as_of"]["event"] != slate.as_of_event
