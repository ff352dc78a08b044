"""Every model gets the same checks: deterministic under a seed, unknown users and items
don't crash it, scores are finite. (State round-trips through Redis: tests/integration.)"""

from __future__ import annotations

import math

import pytest

from online_models.memory import MemoryStore
from tests.model_cases import (
    catalog_writes,
    discover_model_classes,
    engine_models,
    queries,
    scripted_batch,
)

MODELS = engine_models()


def test_the_engine_uses_every_model_class():
    engine_classes = {type(m) for m in MODELS.values()}
    discovered = {cls for cls in discover_model_classes() if cls.__name__ != "NaiveRiverModel"}
    assert discovered == engine_classes


def trained(name: str) -> tuple[MemoryStore, list]:
    model = engine_models()[name]
    store = MemoryStore()
    store.apply(catalog_writes())
    writes = []
    batch = scripted_batch()
    for start in range(0, len(batch), 10):
        chunk = batch[start : start + 10]
        step = model.learn(chunk, store.fetch(model.learn_reads(chunk)))
        store.apply(step)
        writes.append(step)
    return store, writes


@pytest.mark.parametrize("name", sorted(MODELS))
def test_learning_is_deterministic_under_a_seed(name):
    assert trained(name)[1] == trained(name)[1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_users_and_items_do_not_crash_and_scores_are_finite(name):
    model = engine_models()[name]
    for store in (MemoryStore(), trained(name)[0]):
        for query in queries():
            proposed = model.candidates(query, store.fetch(model.candidate_reads(query)))
            items = [*proposed, "never-seen-item"]
            scores = model.score(query, items, store.fetch(model.item_reads(query, items)))
            values = [s.score for s in proposed.values()] + list(scores.values())
            assert all(math.isfinite(v) for v in values), (name, query)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_trained_models_answer_a_known_user(name):
    store, _ = trained(name)
    query = queries()[0]
    proposed = model_candidates_or_scores(engine_models()[name], store, query)
    assert proposed, name


def model_candidates_or_scores(model, store, query):
    proposed = model.candidates(query, store.fetch(model.candidate_reads(query)))
    if proposed:
        return proposed
    items = ["a", "b", "c", "d", "e"]
    return model.score(query, items, store.fetch(model.item_reads(query, items)))
