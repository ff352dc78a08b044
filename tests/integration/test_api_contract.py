"""The HTTP contract: auth, limits and errors are 4xx with a reason, never a 500."""

from __future__ import annotations

import orjson
import pytest

from schemas.examples import example_event
from tests.integration.conftest import Engine, poll


def post_raw(engine: Engine, body: bytes, scope: str = "ingest", **headers: str):
    with engine.client(scope) as client:
        return client.post(
            "/v1/events", content=body, headers={"Content-Type": "application/json", **headers}
        )


def test_accepts_one_event_or_an_array_and_reports_rejections(engine: Engine, unique: str) -> None:
    good = example_event("product_viewed", event_id=f"g-{unique}", user_id=f"u-{unique}")
    bad = example_event("product_added", event_id=f"b-{unique}")
    bad["properties"] = {"product_id": "p"}
    response = post_raw(engine, orjson.dumps(good))
    assert response.status_code == 202 and response.json() == {"accepted": 1, "rejected": []}
    response = post_raw(engine, orjson.dumps([good, bad]))
    assert response.status_code == 202
    assert response.json() == {
        "accepted": 1,
        "rejected": [
            {"index": 1, "event_id": f"b-{unique}", "error": "properties.price: Field required"}
        ],
    }


def test_an_order_the_worker_could_not_convert_is_rejected_at_ingest(
    engine: Engine, unique: str
) -> None:
    """202 means applied: an order in a currency without a rate (CURRENTS_CURRENCY_RATES)
    is refused per event with the worker's own message, the rest of the request lands."""
    user = f"u-{unique}"
    view = example_event("product_viewed", event_id=f"v-{unique}", user_id=user)
    order = example_event("order_completed", event_id=f"o-{unique}", user_id=user)
    order["properties"]["currency"] = "USD"
    message = (
        "properties.currency: USD is not the base currency EUR and no conversion rate is"
        " configured (CURRENTS_CURRENCY_RATES)"
    )
    response = post_raw(engine, orjson.dumps([view, order]))
    assert response.status_code == 202
    assert response.json() == {
        "accepted": 1,
        "rejected": [{"index": 1, "event_id": f"o-{unique}", "error": message}],
    }
    alone = post_raw(engine, orjson.dumps(order))
    assert alone.status_code == 422 and alone.json()["rejected"][0]["error"] == message
    with engine.client("admin") as client:
        profile = poll(
            lambda: (r := client.get(f"/v1/users/{user}/profile")).status_code == 200 and r.json()
        )
    assert profile["counts"].get("product_viewed") == 1
    assert "order_completed" not in profile["counts"]


def test_all_invalid_is_422_with_the_same_shape(engine: Engine) -> None:
    response = post_raw(engine, orjson.dumps([{"event_id": "x"}]))
    assert response.status_code == 422
    assert response.json() == {
        "accepted": 0,
        "rejected": [{"index": 0, "event_id": "x", "error": "type: Field required"}],
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"", 400),
        (b"[]", 422),
        (orjson.dumps([example_event("product_viewed")] * 501), 422),
        (b"[" + b" " * (1024 * 1024 + 10) + b"]", 413),
    ],
)
def test_bad_bodies_are_4xx_with_a_reason(engine: Engine, body: bytes, status: int) -> None:
    response = post_raw(engine, body)
    assert response.status_code == status
    assert response.json()["detail"]


def test_auth_401_without_key_and_403_with_wrong_scope(engine: Engine) -> None:
    body = orjson.dumps(example_event("product_viewed"))
    assert post_raw(engine, body, scope="").status_code == 401
    with engine.client("") as client:
        unknown = client.get("/v1/users/u/recommendations", headers={"X-API-Key": "nope"})
        assert unknown.status_code == 401
    assert post_raw(engine, body, scope="read").status_code == 403
    with engine.client("ingest") as client:
        assert client.get("/v1/users/u/recommendations").status_code == 403


@pytest.mark.parametrize("n", ["0", "101", "-1", "ten"])
def test_n_out_of_range_is_422(engine: Engine, n: str) -> None:
    with engine.client("read") as client:
        assert client.get("/v1/users/u/recommendations", params={"n": n}).status_code == 422


def test_overlong_user_id_is_422(engine: Engine) -> None:
    with engine.client("read") as client:
        assert client.get(f"/v1/users/{'u' * 129}/recommendations").status_code == 422


def test_unknown_user_gets_popular_items_not_personalized(engine: Engine, unique: str) -> None:
    with engine.client("read") as client:
        body = client.get(f"/v1/users/nobody-{unique}/recommendations", params={"n": 3}).json()
    assert body["personalized"] is False
    assert all(item["reason"] == "popular now" for item in body["items"])


def test_health_readiness_metrics_and_openapi(engine: Engine) -> None:
    with engine.client("") as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/readyz").json() == {
            "status": "ready",
            "reasons": [],
            "currencies": {"base": "EUR", "accepted": ["EUR"]},
        }
        spec = client.get("/openapi.json").json()
        assert "/v1/users/{user_id}/recommendations" in spec["paths"]
        client.get("/v1/users/secret-user-id/recommendations")
        metrics = client.get("/metrics").text
    assert "currents_http_request_duration_seconds_bucket" in metrics
    assert 'route="/v1/users/{user_id}/recommendations"' in metrics
    assert "currents_events_processed_total" in metrics
    assert "currents_dlq_total" in metrics
    assert "currents_traits_dropped_total" in metrics
    assert "currents_late_events_total" in metrics
    assert "secret-user-id" not in metrics
