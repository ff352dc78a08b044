"""Segment definitions (admin): list, read, create or replace, delete, page members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from profiles.expressions import ExpressionError
from profiles.segments import SEGMENT_NAME, SegmentDefinition, SegmentError
from serving.deps import AdminKey, SegmentStoreDep
from serving.models import SegmentMembersResponse, SegmentResponse, SegmentsResponse
from serving.responses import OrjsonResponse
from serving.segment_store import CURSOR_PATTERN

router = APIRouter(prefix="/v1/segments", tags=["segments"])

SegmentName = Annotated[str, Path(pattern=SEGMENT_NAME.pattern, max_length=64)]


class SegmentBody(BaseModel):
    condition: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        examples=["tier in [gold, diamond] and affinity.category.electronics >= 0.3"],
    )
    description: str = Field("", max_length=1024)


@router.get("", response_model=SegmentsResponse)
async def list_segments(_key: AdminKey, store: SegmentStoreDep) -> OrjsonResponse:
    return OrjsonResponse({"segments": await store.all()})


@router.get(
    "/{name}", response_model=SegmentResponse, responses={404: {"description": "No such segment"}}
)
async def get_segment(name: SegmentName, _key: AdminKey, store: SegmentStoreDep) -> OrjsonResponse:
    segment = await store.get(name)
    if segment is None:
        raise HTTPException(404, f"no segment named {name!r}")
    return OrjsonResponse(segment)


@router.put(
    "/{name}",
    response_model=SegmentResponse,
    responses={
        201: {"model": SegmentResponse, "description": "Created"},
        422: {"description": "Invalid condition, with the position of the error"},
    },
)
async def put_segment(
    name: SegmentName, _key: AdminKey, store: SegmentStoreDep, body: Annotated[SegmentBody, Body()]
) -> OrjsonResponse:
    try:
        SegmentDefinition.create(name, body.condition, body.description)
    except ExpressionError as error:
        raise HTTPException(
            422, {"field": "condition", "error": error.message, "position": error.position}
        ) from None
    except SegmentError as error:
        raise HTTPException(422, {"field": "name", "error": str(error), "position": 0}) from None
    segment, created = await store.put(name, body.condition, body.description)
    return OrjsonResponse(segment, status_code=201 if created else 200)


@router.delete("/{name}", status_code=204, responses={404: {"description": "No such segment"}})
async def delete_segment(name: SegmentName, _key: AdminKey, store: SegmentStoreDep) -> Response:
    if not await store.delete(name):
        raise HTTPException(404, f"no segment named {name!r}")
    return Response(status_code=204)


@router.get(
    "/{name}/members",
    response_model=SegmentMembersResponse,
    responses={404: {"description": "No such segment"}},
)
async def segment_members(
    name: SegmentName,
    _key: AdminKey,
    store: SegmentStoreDep,
    cursor: Annotated[str | None, Query(max_length=512, pattern=CURSOR_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OrjsonResponse:
    if await store.get(name) is None:
        raise HTTPException(404, f"no segment named {name!r}")
    members, next_cursor = await store.members(name, cursor or None, limit)
    return OrjsonResponse({"segment": name, "members": members, "next_cursor": next_cursor})
