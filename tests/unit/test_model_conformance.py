"""Every model gets the same checks: deterministic under a seed, unknown users and items
don't crash it, scores are finite. (State round-trips through Redis: tests/integration.)"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from online_models.memory import MemoryStore
from tests.model_cases import (
    catalog_writes,
    discover_model_classes,
    engine_models,
    queries,
    scripted_batch,
)
from tests.ranking_helpers import answers

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
            proposed, scores = answers(model, query, store.fetch, ["never-seen-item"])
            values = list(proposed.values()) + list(scores.values())
            assert all(math.isfinite(v) for v in values), (name, query)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_trained_models_answer_a_known_user(name):
    store, _ = trained(name)
    query = queries()[0]
    proposed = model_candidates_or_scores(engine_models()[name], store, query)
    assert proposed, name


def model_candidates_or_scores(model, store, query):
    proposed, scores = answers(model, query, store.fetch, ["a", "b", "c", "d", "e"])
    return proposed or scores


class RecordingState(dict):
    """Fetched state that remembers every read asked for but never fetched."""

    def __init__(self, fetched):
        super().__init__(fetched)
        self.unfetched = []

    def get(self, read, default=None):
        if read not in self:
            self.unfetched.append(read)
        return super().get(read, default)

    def __getitem__(self, read):
        if read not in self:
            self.unfetched.append(read)
        return super().__getitem__(read)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_learning_reads_only_what_learn_reads_named(name):
    """A read learn_reads did not name would come back empty in the worker, and the model
    would learn from (and write back) a blank record instead of the stored one."""
    model = engine_models()[name]
    store = MemoryStore()
    store.apply(catalog_writes())
    # Many distinct items, so negatives and neighbours are not all among a chunk's positives.
    batch = [
        replace(interaction, item_id=f"w{step * 7 % 80}", history=(f"w{step * 3 % 80}",))
        for step, interaction in enumerate(scripted_batch() * 5)
    ]
    for start in range(0, len(batch), 25):
        chunk = batch[start : start + 25]
        reads = model.learn_reads(chunk)
        state = RecordingState(store.fetch(reads))
        store.apply(model.learn(chunk, state))
        assert state.unfetched == [], (name, start)
