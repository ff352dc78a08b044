"""The event contract: envelope, types and per-type properties.

Every producer (``POST /v1/events``, kcat, any Kafka client) sends the same JSON;
:func:`parse_event` validates one decoded object and returns an :class:`Event`.

>>> e = parse_event({"event_id": "e1", "type": "product_viewed", "user_id": "u1",
...                  "timestamp": 1700000000000, "properties": {"product_id": "sku-1"}})
>>> (e.user_key, e.ts, e.props.product_id)
('u1', 1700000000000, 'sku-1')
>>> parse_event({"event_id": "e2", "type": "product_added", "user_id": "u1",
...              "timestamp": "2024-01-01T00:00:00Z", "properties": {"product_id": "p"}})
Traceback (most recent call last):
...
currents.errors.InvalidEventError: properties.price: Field required
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from currents.errors import InvalidEventError

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "MAX_ID_CHARS",
    "MAX_ORDER_PRODUCTS",
    "Event",
    "InvalidEventError",
    "parse_event",
]

MAX_ID_CHARS = 128
MAX_ORDER_PRODUCTS = 200
MAX_EVENT_BYTES = 64 * 1024

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Quantity = Annotated[int, Field(ge=1, le=10_000)]
# Catalog and free text (titles, categories, brands, tags): what the API may be asked to
# filter by, too (serving/models.py).
MAX_TEXT_CHARS = 1024
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]


class _Props(BaseModel):
    # Unknown extra fields are kept (never fatal) so downstream consumers can use them.
    model_config = ConfigDict(extra="allow", frozen=True)


class ProductProps(_Props):
    product_id: Id
    category: Text | None = None
    brand: Text | None = None
    price: Price | None = None
    recommendation_id: Id | None = None


class ReviewProps(ProductProps):
    rating: Annotated[int, Field(ge=1, le=5)]


class SearchProps(_Props):
    query: Annotated[str, StringConstraints(max_length=1024)]


class CartLineProps(_Props):
    product_id: Id
    price: Price
    quantity: Quantity = 1
    category: Text | None = None
    brand: Text | None = None
    recommendation_id: Id | None = None


class OrderLine(_Props):
    product_id: Id
    price: Price
    quantity: Quantity = 1
    category: Text | None = None
    brand: Text | None = None


class CheckoutProps(_Props):
    products: Annotated[list[OrderLine], Field(max_length=MAX_ORDER_PRODUCTS)] = []


class OrderProps(_Props):
    order_id: Id
    products: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_ORDER_PRODUCTS)]
    revenue: Price
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]


class RefundProps(_Props):
    order_id: Id
    products: Annotated[list[OrderLine], Field(max_length=MAX_ORDER_PRODUCTS)] = []
    revenue: Price | None = None
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)] | None = None


class RecommendationShownProps(_Props):
    recommendation_id: Id
    item_ids: Annotated[list[Id], Field(max_length=100)]


class PromotionProps(_Props):
    promotion_id: Id
    campaign_id: Id | None = None


class CouponProps(_Props):
    coupon_code: Id | None = None
    promotion_id: Id | None = None
    campaign_id: Id | None = None
    points_used: Annotated[int, Field(ge=0)] = 0


class IdentifyProps(_Props):
    traits: dict[str, Any] = {}


class ConsentProps(_Props):
    personalization: bool
    marketing: bool


class ErasureProps(_Props):
    """An erasure request, produced by the API only (``DELETE /v1/users/{id}``)."""


class ItemProps(_Props):
    item_id: Id
    title: Text = ""
    category: Text | None = None
    brand: Text | None = None
    price: Price | None = None
    in_stock: bool = True
    tags: Annotated[list[Text], Field(max_length=100)] = []


PROPERTY_MODELS: dict[str, type[_Props]] = {
    "product_viewed": ProductProps,
    "product_clicked": ProductProps,
    "product_favorited": ProductProps,
    "product_shared": ProductProps,
    "product_reviewed": ReviewProps,
    "products_searched": SearchProps,
    "product_added": CartLineProps,
    "product_removed": CartLineProps,
    "checkout_started": CheckoutProps,
    "order_completed": OrderProps,
    "order_refunded": RefundProps,
    "recommendation_shown": RecommendationShownProps,
    "promotion_viewed": PromotionProps,
    "promotion_clicked": PromotionProps,
    "coupon_redeemed": CouponProps,
    "identify": IdentifyProps,
    "consent_updated": ConsentProps,
    "user_erased": ErasureProps,
    "item_upserted": ItemProps,
}
EVENT_TYPES: tuple[str, ...] = tuple(PROPERTY_MODELS)
CATALOG_TYPES = frozenset({"item_upserted"})
# Produced by the engine's own API routes; POST /v1/events refuses them.
CONTROL_TYPES = frozenset({"user_erased"})

EventType = Literal[
    "product_viewed",
    "product_clicked",
    "product_favorited",
    "product_shared",
    "product_reviewed",
    "products_searched",
    "product_added",
    "product_removed",
    "checkout_started",
    "order_completed",
    "order_refunded",
    "recommendation_shown",
    "promotion_viewed",
    "promotion_clicked",
    "coupon_redeemed",
    "identify",
    "consent_updated",
    "user_erased",
    "item_upserted",
]


class Envelope(BaseModel):
    """The fields every event carries. Unknown top-level fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    event_id: Id
    type: EventType
    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: Id | None = None
    timestamp: Annotated[int, Field(ge=0, le=10**13 * 10)] | datetime
    channel: Literal["web", "app", "store"] | None = None
    properties: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event. ``ts`` is event time in epoch milliseconds (UTC)."""

    event_id: str
    type: str
    user_id: str | None
    anonymous_id: str | None
    session_id: str | None
    ts: int
    channel: str | None
    props: Any

    @property
    def user_key(self) -> str | None:
        """The id the event is keyed and stored by: ``user_id``, else ``anonymous_id``."""
        return self.user_id or self.anonymous_id

    @property
    def is_catalog(self) -> bool:
        return self.type in CATALOG_TYPES


def prop(props: Any, name: str) -> Any:
    """``getattr(props, name, None)`` for an event's properties, cheaply when the event
    type lacks ``name``: pydantic would build and raise an AttributeError for that.

    Like pydantic's ``__getattr__``, an undeclared name is looked up in the event's
    extra properties (they are kept).

    >>> props = ProductProps(product_id="p1", note="gift")
    >>> prop(props, "product_id"), prop(props, "note"), prop(props, "query")
    ('p1', 'gift', None)
    """
    declared = _declared_names(type(props))
    if declared is None or name in declared:
        return getattr(props, name, None)
    extra = props.__pydantic_extra__
    return extra.get(name) if extra else None


def _declared_names(model: type) -> frozenset[str] | None:
    """Names ordinary attribute lookup finds on ``model``'s instances (fields and class
    attributes); None for anything but a pydantic model without private attributes (then
    :func:`prop` is plain ``getattr``)."""
    if model in _DECLARED:
        return _DECLARED[model]
    names = None
    if issubclass(model, BaseModel) and not model.__private_attributes__:
        names = frozenset(model.model_fields) | frozenset(dir(model))
    _DECLARED[model] = names
    return names


_DECLARED: dict[type, frozenset[str] | None] = {}


def _describe(error: ValidationError, prefix: str = "") -> str:
    first = error.errors(include_url=False)[0]
    location = prefix + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    ).lstrip(".")
    return f"{location or 'event'}: {first['msg']}"


def _epoch_ms(timestamp: int | datetime) -> int:
    if isinstance(timestamp, int):
        return timestamp
    if timestamp.tzinfo is None:
        raise InvalidEventError("timestamp: RFC 3339 timestamps need a UTC offset (e.g. 'Z')")
    return int(timestamp.timestamp() * 1000)


def parse_event(raw: Any) -> Event:
    """Validate one decoded JSON value; raise :class:`InvalidEventError` naming the field."""
    if not isinstance(raw, dict):
        raise InvalidEventError(f"event: expected a JSON object, got {type(raw).__name__}")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidEventError(_describe(error)) from None
    try:
        props = PROPERTY_MODELS[envelope.type].model_validate(envelope.properties)
    except ValidationError as error:
        raise InvalidEventError(_describe(error, "properties.")) from None
    if envelope.type not in CATALOG_TYPES and not (envelope.user_id or envelope.anonymous_id):
        raise InvalidEventError("user_id: either user_id or anonymous_id is required")
    return Event(
        event_id=envelope.event_id,
        type=envelope.type,
        user_id=envelope.user_id,
        anonymous_id=envelope.anonymous_id,
        session_id=envelope.session_id,
        ts=_epoch_ms(envelope.timestamp),
        channel=envelope.channel,
        props=props,
    )


def partition_key(raw: dict[str, Any]) -> str:
    """The Kafka key for a raw event: its user, else anonymous id, else catalog item id."""
    key = raw.get("user_id") or raw.get("anonymous_id")
    if not key:
        key = (raw.get("properties") or {}).get("item_id") or raw.get("event_id") or ""
    return str(key)
