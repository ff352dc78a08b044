"""Consent, erasure and export through the real API, broker, worker and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import orjson

from currents import keys
from currents.redis_client import create_redis
from currents.subjects import Subjects
from serving.privacy import PrivacyService
from tests.integration.conftest import TEST_PSEUDONYM_KEY, Engine, poll
from tests.integration.test_pipeline import (
    interaction,
    item,
    profile_counts,
    recommendations,
    teach_pairs,
)


def pseudonym(user: str) -> str:
    key = TEST_PSEUDONYM_KEY.encode()
    return hmac.new(key, user.encode(), hashlib.sha256).hexdigest()[:16]


def personalized_user(engine: Engine, unique: str) -> tuple[str, str, str]:
    a, b = f"a-{unique}", f"b-{unique}"
    user = f"u-{unique}"
    assert engine.post_events([item(a), item(b)]).status_code == 202
    teach_pairs(engine, unique, [(a, b)])
    assert engine.post_events(interaction("product_viewed", user, a)).status_code == 202
    poll(
        lambda: recommendations(engine, user)["personalized"] or None,
        what="the user's recommendations to be personalized",
    )
    return user, a, b


def put_consent(engine: Engine, user: str, **consent: Any) -> None:
    with engine.client("ingest") as client:
        response = client.put(f"/v1/users/{user}/consent", json=consent)
    assert response.status_code == 202, response.text


def test_personalization_opt_out_stops_profile_updates_and_personal_recommendations(
    engine: Engine, unique: str
) -> None:
    user, _, b = personalized_user(engine, unique)
    put_consent(engine, user, personalization=False, marketing=True)
    started = time.monotonic()
    poll(
        lambda: (not recommendations(engine, user)["personalized"]) or None,
        timeout_s=5,
        what="recommendations to stop being personalized within 5 s",
    )
    assert time.monotonic() - started < 5
    counts_after_opt_out = profile_counts(engine, user)

    for _ in range(3):
        engine.post_events(interaction("product_clicked", user, b))
    marker = f"marker-{unique}"
    engine.post_events(interaction("product_viewed", f"other-{unique}", marker))
    poll(lambda: profile_counts(engine, f"other-{unique}") or None, what="later events applied")
    assert profile_counts(engine, user) == counts_after_opt_out
    assert recommendations(engine, user)["personalized"] is False

    put_consent(engine, user, personalization=True, marketing=True)
    engine.post_events(interaction("product_viewed", user, b))
    poll(
        lambda: profile_counts(engine, user).get("product_viewed", 0) == 2 or None,
        what="profile updates to resume after consent is given again",
    )


def test_consent_rejects_unknown_fields_and_needs_a_key(engine: Engine, unique: str) -> None:
    with engine.client("ingest") as client:
        bad = client.put(f"/v1/users/u-{unique}/consent", json={"personalization": "maybe"})
        assert bad.status_code == 422
        extra = client.put(
            f"/v1/users/u-{unique}/consent",
            json={"personalization": True, "marketing": True, "email": "x@y.z"},
        )
        assert extra.status_code == 422
    with engine.client("") as anonymous:
        assert anonymous.put(f"/v1/users/u-{unique}/consent", json={}).status_code == 401


def tagged_keys(engine: Engine, user: str) -> list[str]:
    with engine.redis() as r:
        return sorted(k.decode() for k in r.scan_iter(match=keys.user_key_pattern(user)))


def test_erasure_removes_every_key_and_a_replay_does_not_resurrect(
    engine: Engine, unique: str
) -> None:
    user, a, b = personalized_user(engine, unique)
    old_events = [interaction("product_viewed", user, b), interaction("product_added", user, a)]
    assert engine.post_events(old_events).status_code == 202
    poll(lambda: profile_counts(engine, user).get("product_added") or None, what="cart add")
    assert keys.user_profile(user) in tagged_keys(engine, user)
    assert keys.user_factors(user) in tagged_keys(engine, user)

    with engine.client("read") as reader:
        assert reader.delete(f"/v1/users/{user}").status_code == 403
    with engine.client("admin") as admin:
        response = admin.delete(f"/v1/users/{user}")
        assert response.status_code == 200, response.text
        assert response.json()["keys_deleted"] >= 2
        assert admin.get(f"/v1/users/{user}/profile").status_code == 404
    assert tagged_keys(engine, user) == []
    # The marker that keeps replays out is named by a keyed hash, not by the id.
    marker = keys.erasure_marker(Subjects(TEST_PSEUDONYM_KEY.encode()).of(user))
    with engine.redis() as r:
        assert r.get(marker) is not None and user not in marker
    with engine.redis() as r:  # the lists served to them are kept 7 days, without their id
        served = [r.get(k) for k in r.scan_iter(match=keys.recommendation_pattern())]
    assert served and not any(user.encode() in value for value in served if value)

    # The same (older) events again, on the topic as a replay would bring them.
    engine.produce([(user.encode(), orjson.dumps(e)) for e in old_events])
    engine.post_events([interaction("product_viewed", user, a) | {"timestamp": 1}])
    canary = f"canary-{unique}"
    engine.produce([(canary.encode(), orjson.dumps(interaction("product_viewed", canary, a)))])
    poll(lambda: profile_counts(engine, canary) or None, what="events after the replay applied")
    assert tagged_keys(engine, user) == []
    with engine.client("admin") as admin:
        assert admin.get(f"/v1/users/{user}/profile").status_code == 404
    assert recommendations(engine, user)["personalized"] is False

    with engine.redis() as r:
        audit = [fields for _, fields in r.xrange(keys.audit_log())]
    entry = next(f for f in audit if f[b"subject"] == pseudonym(user).encode())
    assert entry[b"action"] == b"erase" and entry[b"by"] == b"admin"
    assert all(user.encode() not in value for f in audit for value in f.values())
    for name in ("worker", "api"):  # logs carry pseudonyms, never ids or keys
        text = (engine.log_dir / f"{name}.log").read_text(errors="replace")
        assert user not in text
        assert not any(secret in text for secret in engine.keys.values())


def test_erasure_clears_segment_membership(engine: Engine, unique: str) -> None:
    segment = f"viewers_{unique}"
    with engine.client("admin") as admin:
        created = admin.put(
            f"/v1/segments/{segment}",
            json={"condition": "counts.product_viewed >= 1"},
        )
        assert created.status_code in {200, 201}, created.text
    user, _, _ = personalized_user(engine, unique)
    with engine.redis() as r:
        poll(
            lambda: r.zscore(keys.segment_members(segment), user) is not None or None,
            what="the user to enter the segment",
        )
        with engine.client("admin") as admin:
            assert admin.delete(f"/v1/users/{user}").status_code == 200
            admin.delete(f"/v1/segments/{segment}")
        assert r.zscore(keys.segment_members(segment), user) is None


def test_export_returns_what_is_held(engine: Engine, unique: str) -> None:
    user, a, _ = personalized_user(engine, unique)
    with engine.client("admin") as admin:
        response = admin.get(f"/v1/users/{user}/export")
        assert response.status_code == 200, response.text
        exported = response.json()
        assert admin.get(f"/v1/users/nobody-{unique}/export").status_code == 404
    assert exported["user_id"] == user
    assert exported["profile"]["counts"]["product_viewed"] == 1
    held = exported["keys"]
    assert held[keys.user_profile(user)]["type"] == "string"
    assert held[keys.user_profile(user)]["value"]["r"][0][0] == a
    assert len(held[keys.user_factors(user)]["value"]) == engine.settings.mf_factors


def test_control_events_are_refused_on_ingest(engine: Engine, unique: str) -> None:
    response = engine.post_events(
        {
            "event_id": f"x-{unique}",
            "type": "user_erased",
            "user_id": f"u-{unique}",
            "timestamp": 1,
            "properties": {},
        }
    )
    assert response.status_code == 422
    assert "reserved" in response.json()["rejected"][0]["error"]


def test_a_marker_an_earlier_version_named_by_the_id_is_renamed_and_still_holds(
    engine: Engine, unique: str
) -> None:
    user = f"old-{unique}"
    erased_at = int(time.time() * 1000)
    with engine.redis() as r:
        r.set(keys.user_tag(user) + ":erased", erased_at, ex=3600)
        r.delete(keys.legacy_markers_renamed())  # as before an upgrade: the scan runs

    async def rename() -> int:
        redis = create_redis(engine.settings.redis_url or "")
        try:
            service = PrivacyService(redis, None, None, engine.settings)  # type: ignore[arg-type]
            return await service.rename_legacy_markers()
        finally:
            await redis.aclose()

    assert asyncio.run(rename()) >= 1
    assert asyncio.run(rename()) == 0  # once per deployment: later starts skip the scan
    marker = keys.erasure_marker(Subjects(TEST_PSEUDONYM_KEY.encode()).of(user))
    with engine.redis() as r:
        assert int(r.get(marker)) == erased_at and 0 < r.ttl(marker) <= 3600
        assert not list(r.scan_iter(match=keys.legacy_erasure_marker_pattern()))
    # An event from before the erasure, replayed, is still kept out.
    old = interaction("product_viewed", user, f"i-{unique}") | {"timestamp": erased_at - 1000}
    engine.produce([(user.encode(), orjson.dumps(old))])
    canary = f"canary-{unique}"
    engine.produce([(canary.encode(), orjson.dumps(interaction("product_viewed", canary, "x")))])
    poll(lambda: profile_counts(engine, canary) or None, what="events after the replay applied")
    assert tagged_keys(engine, user) == []
