"""Shared inputs for the model conformance suite: every model, a scripted batch, queries."""

from __future__ import annotations

import importlib
import pkgutil

import online_models
from currents.settings import Settings
from online_models.base import Interaction, OnlineModel, Query
from online_models.ranking import build_models

DAY = 86_400_000
T0 = 1_790_000_000_000


def discover_model_classes() -> list[type[OnlineModel]]:
    """Every concrete OnlineModel subclass in the online_models package."""
    for module in pkgutil.iter_modules(online_models.__path__):
        importlib.import_module(f"online_models.{module.name}")
    found: list[type[OnlineModel]] = []
    pending = list(OnlineModel.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not getattr(cls, "__abstractmethods__", None):
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


def engine_models() -> dict[str, OnlineModel]:
    return build_models(Settings(kafka_bootstrap="unused:0", redis_url="redis://unused"))


def scripted_batch() -> list[Interaction]:
    interactions = []
    items = ["a", "b", "c", "d", "e"]
    for step in range(40):
        user = f"u{step % 4}"
        item = items[(step * 3) % 5]
        history = tuple(items[(step * 3 - k) % 5] for k in range(1, 4))
        kind = "order_completed" if step % 7 == 0 else "product_viewed"
        interactions.append(
            Interaction(
                user_id=user,
                item_id=item,
                kind=kind,
                weight=6.0 if kind == "order_completed" else 1.0,
                ts=T0 + step * 60_000,
                category="shoes" if item in "abc" else "books",
                brand="acme",
                history=history if kind != "order_completed" else (),
                bought_before=history[:1] if kind == "order_completed" else (),
                session_items=history[:2],
                segments=("vip",) if user == "u0" else (),
            )
        )
    return interactions


def queries() -> list[Query]:
    now = T0 + DAY
    affinities = {"category": {"shoes": 0.7, "books": 0.3}, "brand": {"acme": 1.0}}
    return [
        Query(
            "u0",
            now,
            history=(("a", T0), ("b", T0 - 1)),
            session_items=("a",),
            affinities=affinities,
            segments=("vip",),
        ),
        Query("nobody", now),
        Query(None, now, session_items=("never-seen",), context_item="unknown-item"),
        Query("u1", now, category="books", affinities=affinities),
    ]


def catalog_writes() -> list:
    """What the worker writes for item_upserted events of the scripted items."""
    from currents import keys
    from currents.writes import HashSet, ZAdd

    writes: list = []
    for index, item in enumerate("abcde"):
        category = "shoes" if item in "abc" else "books"
        writes.append(
            HashSet(
                keys.item_record(item),
                {"category": category, "brand": "acme", "title": item.upper(), "in_stock": 1},
            )
        )
        writes.append(ZAdd(keys.category_new_items(category), {item: float(T0 + index)}))
    return writes
