"""Per-user reads: recommendations, profile (admin), summary, promotions."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel

from currents import keys
from schemas.events import MAX_ID_CHARS
from schemas.profile import UserState
from serving.deps import (
    AdminKey,
    ProfilesDep,
    ReadKey,
    RedisDep,
    RequestRoute,
    authorize,
    openapi_parameters,
    request_model,
)
from serving.models import (
    ProfileResponse,
    RecommendationParams,
    RecommendationResponse,
    RfmResponse,
)
from serving.recommend import Filters, Recommender
from serving.responses import OrjsonResponse

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


async def recommendations(request: Request) -> OrjsonResponse:
    """The storefront's hottest route: it takes its parameters and key, and makes its
    response, without FastAPI's dependency and serialisation machinery, which cost more
    than the answer itself (a slate read and filtered: docs/performance.md)."""
    await authorize(request, request.headers.get("x-api-key"), "read")
    params = request_model(RecommendationParams, request)
    filters = Filters(
        params.exclude, params.category, params.min_price, params.max_price, params.diversity
    )
    recommender: Recommender = request.app.state.recommender
    result = await recommender.for_user(
        params.user_id,
        params.n,
        now=int(time.time() * 1000),
        filters=filters,
        context_item=params.context_item,
    )
    return OrjsonResponse(
        {
            "recommendation_id": result.recommendation_id,
            "user_id": result.user_id,
            "personalized": result.personalized,
            "items": result.items,
            "as_of": result.as_of,
            "slate_age_ms": result.slate_age_ms,
            "source": result.source,
        }
    )


router.add_api_route(
    "/{user_id}/recommendations",
    recommendations,
    methods=["GET"],
    # The endpoint takes the request and returns the response itself (serving/deps.py).
    route_class_override=RequestRoute,
    response_model=RecommendationResponse,
    responses={
        401: {"description": "No or an unknown API key"},
        403: {"description": "The key lacks the read scope"},
        422: {"description": "A parameter out of range, named in `detail`"},
    },
    # Parameters and key are read by hand (above); their description is the same model.
    openapi_extra={
        "parameters": openapi_parameters(RecommendationParams, path={"user_id"}),
        "security": [{"APIKeyHeader": []}],
    },
)


@router.get(
    "/{user_id}/profile",
    response_model=ProfileResponse,
    responses={404: {"description": "The engine holds nothing about this user"}},
)
async def profile(user_id: UserId, _key: AdminKey, profiles: ProfilesDep) -> OrjsonResponse:
    result = await profiles.read(user_id, now=int(time.time() * 1000))
    if result is None:
        raise HTTPException(404, "unknown user")
    return OrjsonResponse(result)


class CategoryScore(BaseModel):
    category: str
    score: float


class SummaryResponse(BaseModel):
    user_id: str
    tier: str
    lifecycle: str
    top_categories: list[CategoryScore]
    rfm: RfmResponse
    cart_items: int
    cart_value: float


@router.get(
    "/{user_id}/summary",
    response_model=SummaryResponse,
    responses={404: {"description": "The engine holds nothing about this user"}},
)
async def summary(user_id: UserId, _key: ReadKey, profiles: ProfilesDep) -> OrjsonResponse:
    """A minimal, non-PII view of the profile for storefronts (read scope): tier,
    lifecycle, top five categories, RFM and the cart size. No traits, no history."""
    result = await profiles.read(user_id, now=int(time.time() * 1000))
    if result is None:
        raise HTTPException(404, "unknown user")
    categories = sorted(result["affinities"]["category"].items(), key=lambda kv: -kv[1])[:5]
    cart = result["cart"]
    return OrjsonResponse(
        {
            "user_id": user_id,
            "tier": result["tier"],
            "lifecycle": result["lifecycle"],
            "top_categories": [{"category": c, "score": v} for c, v in categories],
            "rfm": result["rfm"],
            "cart_items": sum(line["quantity"] for line in cart["items"]),
            "cart_value": cart["value"],
        }
    )


@router.get("/{user_id}/promotions")
async def promotions(user_id: UserId, _key: ReadKey, redis: RedisDep) -> OrjsonResponse:
    """Active promotions the campaigns delivered to this user, best first."""
    blob: bytes | None = await redis.get(keys.user_profile(user_id))  # type: ignore[assignment]
    now = int(time.time() * 1000)
    active = [p for p in UserState.from_bytes(blob).promotions if p["expires_at"] > now]
    active.sort(key=lambda p: (-p["priority"], -p["created_at"], p["promotion_id"]))
    return OrjsonResponse({"user_id": user_id, "promotions": active})
