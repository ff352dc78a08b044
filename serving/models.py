"""Request and response shapes of the HTTP API (separate from internal state)."""

from __future__ import annotations

from pydantic import BaseModel


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


class RecommendationResponse(BaseModel):
    recommendation_id: str
    user_id: str
    personalized: bool
    items: list[ScoredItem]


class SimilarItemsResponse(BaseModel):
    item_id: str
    items: list[ScoredItem]


class ReadinessResponse(BaseModel):
    status: str
    reasons: list[str] = []


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
