"""Per-item reads: the catalog listing and similar items."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from currents import keys
from currents.redis_reads import fetch_reads
from currents.text import as_text
from online_models.base import hgetall
from online_models.cooccurrence import KINDS
from schemas.events import MAX_ID_CHARS
from serving.deps import ReadKey, RecommenderDep, RedisDep
from serving.models import SimilarItemsResponse
from serving.responses import OrjsonResponse

router = APIRouter(prefix="/v1/items", tags=["items"])

KIND_PARAM = {
    "bought_together": ("bought",),
    "viewed_together": ("viewed",),
    "content": ("content",),
    "all": (*KINDS, "content"),
}

CATALOG_PAGE_MAX = 200


class CatalogItem(BaseModel):
    item_id: str
    title: str
    category: str
    brand: str
    price: float | None
    in_stock: bool


class CatalogPage(BaseModel):
    items: list[CatalogItem]
    categories: list[str]
    total: int
    next_offset: int | None


def catalog_item(item_id: str, record: dict[str, str]) -> dict[str, Any]:
    """The public fields of a catalog record (``streams/processor.py`` writes it)."""
    try:
        price: float | None = float(record["price"])
    except (KeyError, ValueError):
        price = None
    return {
        "item_id": item_id,
        "title": record.get("title") or item_id,
        "category": record.get("category", ""),
        "brand": record.get("brand", ""),
        "price": price,
        "in_stock": record.get("in_stock") != "0",
    }


@router.get("", response_model=CatalogPage)
async def catalog(
    _key: ReadKey,
    redis: RedisDep,
    category: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=CATALOG_PAGE_MAX)] = 48,
) -> OrjsonResponse:
    """One page of the catalog: every item by upsert time (then id), or one category's by
    price; plus the categories that have priced items. Bounded: at most 200 per page."""
    index = keys.category_prices(category) if category else keys.catalog_items()
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(index)
    pipe.zrange(index, offset, offset + limit - 1)
    pipe.hkeys(keys.price_tertiles())
    total, members, category_names = await pipe.execute()
    ids = [as_text(m) for m in members]
    records = await fetch_reads(redis, [hgetall(keys.item_record(i)) for i in ids])
    items = [
        catalog_item(i, record) for i in ids if (record := records[hgetall(keys.item_record(i))])
    ]
    end = offset + len(ids)
    return OrjsonResponse(
        {
            "items": items,
            "categories": sorted(as_text(c) for c in category_names),
            "total": int(total),
            "next_offset": end if end < total else None,
        }
    )


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
