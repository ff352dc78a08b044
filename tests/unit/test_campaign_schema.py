import pytest
from pydantic import ValidationError

from serving.routers.campaigns import validation_detail
from triggers.campaigns import Campaign

BASE = {"name": "Welcome", "trigger": {"type": "first_visit"}, "action": {"message": "Hello"}}


def detail(body):
    with pytest.raises(ValidationError) as error:
        Campaign.model_validate(body)
    return validation_detail(error.value)


def test_defaults_are_filled():
    campaign = Campaign.model_validate({**BASE, "trigger": {"type": "browse_abandoned"}})
    assert (campaign.trigger.delay_minutes, campaign.trigger.min_views) == (30, 3)
    assert campaign.guardrails.cap_per_user.count == 1
    assert campaign.action.channels == ["onsite", "topic"]


def test_condition_errors_carry_the_position():
    assert detail({**BASE, "condition": "tier == gold and foo > 1"}) == {
        "field": "condition",
        "error": detail({**BASE, "condition": "tier == gold and foo > 1"})["error"],
        "position": 17,
    }
    assert "unknown field 'foo'" in detail({**BASE, "condition": "foo > 1"})["error"]


def test_event_fields_are_allowed_in_conditions():
    body = {
        **BASE,
        "trigger": {"type": "event", "event_type": "product_viewed"},
        "condition": 'event.type == product_viewed and event.properties.product_id == "p"',
    }
    assert Campaign.model_validate(body).trigger.event_type == "product_viewed"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({**BASE, "trigger": {"type": "segment_entered"}}, "trigger", "needs 'segment'"),
        ({**BASE, "trigger": {"type": "event"}}, "trigger", "needs 'event_type'"),
        ({**BASE, "trigger": {"type": "teleport"}}, "trigger.type", "Input should be"),
        ({**BASE, "action": {"message": "Hi {email}"}}, "campaign", "unknown field {email}"),
        ({**BASE, "action": {"message": "x", "channels": ["webhook"]}}, "action", "webhook_url"),
        ({**BASE, "guardrails": {"holdout": 1.5}}, "guardrails.holdout", "less than 1"),
        (
            {**BASE, "guardrails": {"quiet_hours": {"start": "25:00", "end": "08:00"}}},
            "guardrails.quiet_hours.start",
            "pattern",
        ),
    ],
)
def test_invalid_campaigns_name_the_field(body, field, fragment):
    problem = detail(body)
    assert problem["field"] == field
    assert fragment in problem["error"]
