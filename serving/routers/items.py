"""Per-item reads: similar items."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from online_models.cooccurrence import KINDS
from schemas.events import MAX_ID_CHARS
from serving.deps import ReadKey, RecommenderDep
from serving.models import SimilarItemsResponse
from serving.responses import OrjsonResponse

router = APIRouter(prefix="/v1/items", tags=["items"])

KIND_PARAM = {
    "bought_together": ("bought",),
    "viewed_together": ("viewed",),
    "content": ("content",),
    "all": (*KINDS, "content"),
}


@router.get(
    "/{item_id}/similar",
    response_model=SimilarItemsResponse,
    responses={404: {"description": "The item is unknown"}},
)
async def similar_items(
    item_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    _key: ReadKey,
    recommender: RecommenderDep,
    n: Annotated[int, Query(ge=1, le=100)] = 10,
    kind: Literal["bought_together", "viewed_together", "content", "all"] = "all",
) -> OrjsonResponse:
    items = await recommender.similar(
        item_id, n, now=int(time.time() * 1000), kinds=KIND_PARAM[kind]
    )
    if items is None:
        raise HTTPException(404, "unknown item: no catalog record and no interactions")
    return OrjsonResponse({"item_id": item_id, "items": items})
