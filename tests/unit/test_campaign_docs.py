"""docs/campaigns.md stays true: its schema and its example per trigger validate."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import yaml

from triggers.campaigns import Campaign, TriggerType

DOC = (Path(__file__).resolve().parents[2] / "docs/campaigns.md").read_text()


def yaml_blocks() -> list[typing.Any]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", DOC, re.S)]


def test_the_documented_schema_validates() -> None:
    schema = yaml_blocks()[0]
    campaign = Campaign.model_validate(schema)
    assert campaign.guardrails.quiet_hours is not None
    assert campaign.action.channels == ["onsite", "topic"]


def test_one_valid_example_per_trigger_type() -> None:
    examples = [Campaign.model_validate(body) for body in yaml_blocks()[1]]
    assert sorted(c.trigger.type for c in examples) == sorted(typing.get_args(TriggerType))
