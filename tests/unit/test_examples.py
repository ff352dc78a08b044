from pathlib import Path

import yaml

from triggers.campaigns import Campaign

ROOT = Path(__file__).resolve().parents[2]


def test_demo_campaigns_are_valid():
    campaigns = yaml.safe_load((ROOT / "examples/campaigns.yaml").read_text())
    assert sorted(campaigns) == ["cart-abandonment", "welcome", "win-back"]
    types = {Campaign.model_validate(body).trigger.type for body in campaigns.values()}
    assert types == {"cart_abandoned", "first_visit", "win_back"}
