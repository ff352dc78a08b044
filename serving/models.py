"""Request and response shapes of the HTTP API (separate from internal state)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import MAX_ID_CHARS, MAX_TEXT_CHARS


class RejectedEvent(BaseModel):
    index: int
    event_id: str | None
    error: str


class IngestResponse(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]


class ScoredItem(BaseModel):
    item_id: str
    score: float
    reason: str


class AsOf(BaseModel):
    event: str | None = Field(
        None, description="Fingerprint of the newest event reflected (blake2b-48 hex of its id)"
    )
    at: int | None = Field(None, description="Its time, epoch ms")


class RecommendationParams(BaseModel):
    """The recommendations route's parameters: ``user_id`` from the path, the rest from
    the query (``serving/deps.py`` request_model)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)

    n: int = Field(10, ge=1, le=100, description="How many items")
    context_item: str | None = Field(
        None, min_length=1, max_length=MAX_ID_CHARS, description="Item on the page"
    )
    category: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS)
    min_price: float | None = Field(None, ge=0, le=1e12)
    max_price: float | None = Field(None, ge=0, le=1e12)
    exclude: Literal["purchased", "viewed", "none"] = "purchased"
    diversity: int | None = Field(None, ge=1, le=100, description="Max items per category")


class RecommendationResponse(BaseModel):
    recommendation_id: str
    user_id: str
    personalized: bool
    items: list[ScoredItem]
    as_of: AsOf | None = Field(None, description="The shopper's newest event this reflects")
    slate_age_ms: int | None = Field(None, description="How long ago the slate was ranked")
    source: Literal["slate", "shared", "ranked"] = Field(
        "slate", description="The shopper's slate, a shared slate, or ranked on the spot"
    )


class SimilarItemsResponse(BaseModel):
    item_id: str
    items: list[ScoredItem]


class Currencies(BaseModel):
    base: str
    accepted: list[str]


class ReadinessResponse(BaseModel):
    status: str
    reasons: list[str] = []
    # What an order's ``properties.currency`` may be (CURRENTS_BASE_CURRENCY and
    # CURRENTS_CURRENCY_RATES); an order in another one is rejected at ingest.
    currencies: Currencies | None = None


class Backfill(BaseModel):
    state: str
    done: int
    total: int


class SegmentResponse(BaseModel):
    name: str
    condition: str
    description: str
    version: int
    size: int
    backfill: Backfill


class SegmentsResponse(BaseModel):
    segments: list[SegmentResponse]


class SegmentMembersResponse(BaseModel):
    segment: str
    members: list[str]
    next_cursor: str | None


class RfmResponse(BaseModel):
    recency_days: float | None
    frequency: int
    monetary: float
    r: int
    f: int
    m: int


class SpendingResponse(BaseModel):
    avg_price: float | None
    median_price: float | None
    price_band: str | None


class CartLine(BaseModel):
    product_id: str
    quantity: int
    price: float


class CartResponse(BaseModel):
    items: list[CartLine]
    value: float


class AffinitiesResponse(BaseModel):
    category: dict[str, float]
    brand: dict[str, float]


class SessionResponse(BaseModel):
    items: list[str]


class ProfileResponse(BaseModel):
    user_id: str
    counts: dict[str, int]
    first_seen: str | None
    last_seen: str | None
    sessions: int
    affinities: AffinitiesResponse
    spending: SpendingResponse
    rfm: RfmResponse
    lifecycle: str
    tier: str
    points: int
    channel_preference: str | None
    session: SessionResponse
    cart: CartResponse
    traits: dict[str, str | bool | int | float]
    segments: list[str]


class ErrorResponse(BaseModel):
    """Every error: ``detail`` says what went wrong (a message, or the failing fields)."""

    detail: Any


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# Answers any /v1 route may give besides its own; documented on every operation.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed request body"),
    401: _error("Missing or unknown API key"),
    403: _error("The API key lacks the route's scope"),
    413: _error("Request body too large"),
    422: _error("Invalid parameters or body; `detail` names the field"),
    429: _error("Rate limit exceeded for this API key; retry after `Retry-After` seconds"),
    503: _error("Redis or the broker is unavailable; retry after `Retry-After` seconds"),
}
