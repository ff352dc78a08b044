"""Campaign definitions through the API and Redis: validation, versions, admin scope."""

from __future__ import annotations

from tests.integration.conftest import Engine

CART = {
    "name": "Cart abandonment",
    "trigger": {"type": "cart_abandoned", "delay_minutes": 30},
    "condition": "cart.value >= 50",
    "action": {"message": "Your cart ({cart.value}) is waiting", "discount_percent": 10},
}


def test_campaigns_are_validated_versioned_and_admin_only(engine: Engine, unique: str) -> None:
    campaign_id = f"cart-{unique}"
    with engine.client("admin") as client:
        created = client.put(f"/v1/campaigns/{campaign_id}", json=CART)
        assert created.status_code == 201 and created.json()["version"] == 1
        assert client.put(f"/v1/campaigns/{campaign_id}", json=CART).status_code == 200
        changed = {**CART, "condition": "cart.value >= 80"}
        assert client.put(f"/v1/campaigns/{campaign_id}", json=changed).json()["version"] == 2
        current = client.get(f"/v1/campaigns/{campaign_id}").json()
        assert current["campaign"]["condition"] == "cart.value >= 80"
        bad = client.put(f"/v1/campaigns/{campaign_id}", json={**CART, "condition": "cart.value >"})
        assert bad.status_code == 422
        assert bad.json()["detail"]["field"] == "condition"
        assert bad.json()["detail"]["position"] == 12
        assert client.delete(f"/v1/campaigns/{campaign_id}").status_code == 204
        assert client.get(f"/v1/campaigns/{campaign_id}").status_code == 404
        versions = client.get(f"/v1/campaigns/{campaign_id}/versions").json()["versions"]
        assert [v["version"] for v in versions] == [1, 2, 3]
        assert versions[0]["campaign"]["condition"] == "cart.value >= 50"
        assert versions[-1]["deleted"] is True
        assert client.delete(f"/v1/campaigns/{campaign_id}").status_code == 404
    with engine.client("read") as client:
        assert client.get("/v1/campaigns").status_code == 403
