"""Campaign definitions: a trigger, a condition, an action and guardrails.

Validated with precise errors (the condition uses the segment language, with
``event.*`` fields for event-driven triggers; message templates may only name known
profile fields, ``item.*`` and ``items``). triggers/engine.py fires them.

>>> campaign = Campaign.model_validate({
...     "name": "Cart abandonment", "trigger": {"type": "cart_abandoned", "delay_minutes": 30},
...     "condition": "cart.value >= 50",
...     "action": {"message": "Your cart ({cart.value} EUR) is waiting", "discount_percent": 10}})
>>> campaign.trigger.delay_minutes, campaign.guardrails.holdout
(30.0, 0.1)
"""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, Field, StrictBool, field_validator, model_validator

from profiles.expressions import (
    PROFILE_FIELDS,
    PROFILE_PREFIXES,
    ExpressionError,
    FieldSpec,
    compile_condition,
)
from schemas.events import EVENT_TYPES
from triggers.timing import zone

# Template names besides profile fields; ``item.*`` is the promotion's first item and
# ``items`` the titles of all of them (recommended items, or the item whose price dropped).
TEMPLATE_NAMES = frozenset(
    {"user_id", "coupon_code", "campaign", "item.id", "item.title", "item.price", "items"}
)
CAMPAIGN_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TriggerType = Literal[
    "cart_abandoned",
    "browse_abandoned",
    "first_visit",
    "new_user",
    "win_back",
    "tier_upgraded",
    "birthday",
    "price_drop",
    "segment_entered",
    "event",
]
EVENT_FIELDS: dict[str, FieldSpec] = {
    "event.type": FieldSpec("string", tuple(EVENT_TYPES), "event type"),
    "event.channel": FieldSpec("string", ("web", "app", "store"), "channel"),
}
EVENT_PREFIXES = {"event.properties.": (FieldSpec("string"), None)}


class CampaignError(ValueError):
    def __init__(self, field: str, message: str, position: int | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.position = position


class Trigger(BaseModel):
    type: TriggerType
    delay_minutes: float | None = Field(None, ge=0, le=60 * 24 * 30)
    min_views: int | None = Field(None, ge=1, le=1000)
    segment: str | None = Field(None, max_length=64)
    event_type: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Trigger:
        if self.type in {"cart_abandoned", "browse_abandoned"} and self.delay_minutes is None:
            self.delay_minutes = 30
        if self.type == "browse_abandoned" and self.min_views is None:
            self.min_views = 3
        if self.type == "segment_entered" and not self.segment:
            raise ValueError("a segment_entered trigger needs 'segment'")
        if self.type == "event" and self.event_type not in EVENT_TYPES:
            raise ValueError(f"an event trigger needs 'event_type', one of {list(EVENT_TYPES)}")
        return self


class Action(BaseModel):
    message: str = Field(..., min_length=1, max_length=1000)
    discount_percent: float | None = Field(None, gt=0, le=100)
    discount_amount: float | None = Field(None, gt=0)
    coupon_code: str | None = Field(None, max_length=64)
    unique_coupon: StrictBool = False
    recommendations: int = Field(0, ge=0, le=20)
    expires_in_hours: float = Field(48, gt=0, le=24 * 365)
    channels: list[Literal["onsite", "topic", "webhook"]] = ["onsite", "topic"]
    webhook_url: str | None = Field(None, max_length=2048)

    @model_validator(mode="after")
    def _consistent(self) -> Action:
        if "webhook" in self.channels and not self.webhook_url:
            raise ValueError("the webhook channel needs 'webhook_url'")
        if self.discount_percent is not None and self.discount_amount is not None:
            raise ValueError("give discount_percent or discount_amount, not both")
        return self


class Cap(BaseModel):
    count: int = Field(1, ge=1, le=1000)
    window_hours: float = Field(24, gt=0, le=24 * 365)


class QuietHours(BaseModel):
    start: str = Field(..., pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(..., pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # An IANA zone; unset: the user's zone (``region`` trait), else CURRENTS_CAMPAIGN_TIMEZONE.
    timezone: str | None = Field(None, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is not None:
            zone(name)  # raises ValueError naming the zone
        return name


class Guardrails(BaseModel):
    cap_per_user: Cap = Cap()
    priority: int = Field(0, ge=-1000, le=1000)
    budget: int | None = Field(None, ge=1)
    quiet_hours: QuietHours | None = None
    holdout: float = Field(0.1, ge=0, lt=1)


class Campaign(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)
    trigger: Trigger
    condition: str = Field("", max_length=4096)
    action: Action
    guardrails: Guardrails = Guardrails()
    active: StrictBool = True

    @field_validator("condition")
    @classmethod
    def _condition_compiles(cls, condition: str) -> str:
        if condition.strip():
            fields = {**PROFILE_FIELDS, **EVENT_FIELDS}
            prefixes = {**PROFILE_PREFIXES, **EVENT_PREFIXES}
            try:
                compile_condition(condition, fields, prefixes)
            except ExpressionError as error:
                raise CampaignError("condition", error.message, error.position) from None
        return condition

    @model_validator(mode="after")
    def _template_fields_known(self) -> Campaign:
        for _, name, _, _ in string.Formatter().parse(self.action.message):
            if name is None:
                continue
            known = name in PROFILE_FIELDS or name in TEMPLATE_NAMES
            known = known or any(name.startswith(p) for p in PROFILE_PREFIXES)
            if not known:
                raise ValueError(f"action.message names unknown field {{{name}}}")
        return self
