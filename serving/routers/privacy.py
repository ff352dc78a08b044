"""A shopper's rights: consent (`ingest`), erasure and export (`admin`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict

from schemas.events import MAX_ID_CHARS
from serving.deps import AdminKey, IngestKey
from serving.privacy import PrivacyService
from serving.producer import BrokerUnavailable
from serving.responses import OrjsonResponse

router = APIRouter(prefix="/v1/users", tags=["privacy"])

UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
BROKER_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"description": "The broker cannot take the request now; retry"}
}


class ConsentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    personalization: bool
    marketing: bool


class ConsentResponse(BaseModel):
    user_id: str
    personalization: bool
    marketing: bool
    recorded_at: int


class ErasureResponse(BaseModel):
    user_id: str
    erased_at: int
    keys_deleted: int


def _service(request: Request) -> PrivacyService:
    return request.app.state.privacy


def _retry_later(error: BrokerUnavailable) -> HTTPException:
    return HTTPException(503, f"{error}; retry", headers={"Retry-After": "2"})


@router.put(
    "/{user_id}/consent",
    status_code=202,
    response_model=ConsentResponse,
    responses=BROKER_DOWN,
)
async def put_consent(
    user_id: UserId, body: ConsentRequest, _key: IngestKey, request: Request
) -> OrjsonResponse:
    """Record the shopper's consent; the engine applies it within seconds, in order with
    their events. `personalization: false` stops profile and model updates and makes
    recommendations non-personalized; `marketing: false` stops every promotion."""
    try:
        at = await _service(request).set_consent(
            user_id, personalization=body.personalization, marketing=body.marketing
        )
    except BrokerUnavailable as error:
        raise _retry_later(error) from None
    return OrjsonResponse(
        {
            "user_id": user_id,
            "personalization": body.personalization,
            "marketing": body.marketing,
            "recorded_at": at,
        },
        status_code=202,
    )


@router.delete("/{user_id}", response_model=ErasureResponse, responses=BROKER_DOWN)
async def erase_user(user_id: UserId, key: AdminKey, request: Request) -> OrjsonResponse:
    """Erase everything held about the user (GDPR Art. 17) and keep an erasure marker so
    that their older events, still in the topic or replayed later, are dropped."""
    try:
        result = await _service(request).erase(user_id, by=key.name)
    except BrokerUnavailable as error:
        raise _retry_later(error) from None
    return OrjsonResponse(result)


@router.get(
    "/{user_id}/export",
    responses={404: {"description": "The engine holds nothing about this user"}},
)
async def export_user(user_id: UserId, key: AdminKey, request: Request) -> OrjsonResponse:
    """Everything held about the user, as JSON (GDPR Art. 15)."""
    exported = await _service(request).export(user_id, by=key.name)
    if exported is None:
        raise HTTPException(404, "the engine holds nothing about this user")
    return OrjsonResponse(exported)
