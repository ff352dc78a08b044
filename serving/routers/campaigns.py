"""Campaign definitions (admin): create or replace (a new version each time), read,
list versions, delete; and their measurement. Firing campaigns is the trigger engine's
job (triggers/engine.py, in the worker)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request, Response
from pydantic import ValidationError

from serving.campaign_stats import read_stats
from serving.campaign_store import CampaignStore
from serving.deps import AdminKey
from serving.responses import OrjsonResponse
from triggers.campaigns import CAMPAIGN_ID, Campaign, CampaignError

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

CampaignId = Annotated[str, Path(pattern=CAMPAIGN_ID.pattern, max_length=64)]


def store_of(request: Request) -> CampaignStore:
    return CampaignStore(request.app.state.redis)


def validation_detail(error: ValidationError) -> dict[str, Any]:
    """The first problem, with the field path and, for conditions, the position."""
    first = error.errors(include_url=False)[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, CampaignError):
        return {"field": cause.field, "error": cause.message, "position": cause.position}
    location = ".".join(str(part) for part in first["loc"]) or "campaign"
    message = str(first["msg"]).removeprefix("Value error, ")
    return {"field": location, "error": message, "position": None}


@router.get("")
async def list_campaigns(request: Request, _key: AdminKey) -> OrjsonResponse:
    return OrjsonResponse({"campaigns": await store_of(request).all()})


@router.get("/{campaign_id}", responses={404: {"description": "No such campaign"}})
async def get_campaign(request: Request, campaign_id: CampaignId, _key: AdminKey) -> OrjsonResponse:
    campaign = await store_of(request).get(campaign_id)
    if campaign is None:
        raise HTTPException(404, f"no campaign {campaign_id!r}")
    return OrjsonResponse(campaign)


@router.get("/{campaign_id}/versions", responses={404: {"description": "No such campaign"}})
async def campaign_versions(
    request: Request, campaign_id: CampaignId, _key: AdminKey
) -> OrjsonResponse:
    versions = await store_of(request).versions(campaign_id)
    if not versions:
        raise HTTPException(404, f"no campaign {campaign_id!r}")
    return OrjsonResponse({"id": campaign_id, "versions": versions})


@router.get("/{campaign_id}/stats", responses={404: {"description": "No such campaign"}})
async def stats(request: Request, campaign_id: CampaignId, _key: AdminKey) -> OrjsonResponse:
    """Sends, views, clicks, redemptions, conversion and revenue, treatment vs holdout, and
    the uplift with its 95% confidence interval (docs/campaigns.md)."""
    store = store_of(request)
    if await store.get(campaign_id) is None and not await store.versions(campaign_id):
        raise HTTPException(404, f"no campaign {campaign_id!r}")
    return OrjsonResponse(await read_stats(request.app.state.redis, campaign_id))


@router.put(
    "/{campaign_id}",
    responses={201: {"description": "Created"}, 422: {"description": "Invalid campaign"}},
)
async def put_campaign(
    request: Request,
    campaign_id: CampaignId,
    _key: AdminKey,
    body: Annotated[
        dict[str, Any],
        Body(
            examples=[
                {
                    "name": "Cart abandonment",
                    "trigger": {"type": "cart_abandoned", "delay_minutes": 30},
                    "condition": "cart.value >= 50",
                    "action": {"message": "Your cart is waiting", "discount_percent": 10},
                }
            ]
        ),
    ],
) -> OrjsonResponse:
    try:
        campaign = Campaign.model_validate(body)
    except ValidationError as error:
        raise HTTPException(422, validation_detail(error)) from None
    record, created = await store_of(request).put(campaign_id, campaign)
    return OrjsonResponse(record, status_code=201 if created else 200)


@router.delete(
    "/{campaign_id}", status_code=204, responses={404: {"description": "No such campaign"}}
)
async def delete_campaign(request: Request, campaign_id: CampaignId, _key: AdminKey) -> Response:
    if not await store_of(request).delete(campaign_id):
        raise HTTPException(404, f"no campaign {campaign_id!r}")
    return Response(status_code=204)
