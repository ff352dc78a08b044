import numpy as np

from currents import keys
from currents.writes import HashIncr, ZIncr, coalesce
from online_models.arrays import Catalog, Scores, merged
from online_models.base import Interaction, Query
from online_models.cooccurrence import CooccurrenceModel
from online_models.decay import PREVIOUS_GENERATION_SCALE, DecayClock
from online_models.memory import MemoryStore
from online_models.ranking import Ranker
from online_models.session import SessionModel
from online_models.trending import TrendingModel
from tests.ranking_helpers import proposed as proposals_of
from tests.ranking_helpers import ranked as ranking_of

DAY = 24 * 3_600_000


def learn(store, models, interactions):
    for model in models.values():
        store.apply(model.learn(interactions, store.fetch(model.learn_reads(interactions))))


def test_hybrid_prefers_cooccurrence_and_backfills_with_popularity():
    models = {"cooccurrence": CooccurrenceModel(), "trending": TrendingModel()}
    ranker = Ranker(models, {"cooccurrence": 1.0, "trending": 0.3})
    store = MemoryStore()
    learn(
        store,
        models,
        [
            Interaction("t", "x", "product_viewed", 1.0, 0, history=("a",)),
            Interaction("t2", "p", "product_viewed", 5.0, 0),
        ],
    )
    query = Query("u", now=0, history=(("a", 0),))
    ranked = ranking_of(ranker, query, store)
    assert list(zip(ranked.items, ranked.models, strict=True))[:2] == [
        ("x", "cooccurrence"),
        ("p", "trending"),
    ]
    assert (ranked.reasons[0], ranked.sources[0]) == ("viewed together with ", "a")
    assert ranked.personal[:2] == [True, False]


def test_recent_history_weighs_more():
    model = CooccurrenceModel()
    store = MemoryStore()
    store.apply(
        model.learn(
            [
                Interaction("t", "x", "product_viewed", 1.0, 0, history=("old",)),
                Interaction("t", "y", "product_viewed", 1.0, 0, history=("new",)),
            ],
            {},
        )
    )
    query = Query("u", now=10 * DAY, history=(("new", 10 * DAY), ("old", 0)))
    proposed = proposals_of(model, query, store)
    assert proposed["y"][0] > proposed["x"][0]


def test_decay_generations_merge_without_loss():
    clock = DecayClock(half_life_ms=1000)
    boundary = int(clock.span_ms)
    before = clock.weight(boundary - 1000, clock.generation(boundary - 1000))
    after = clock.weight(boundary + 1000, clock.generation(boundary + 1000))
    catalog = Catalog()
    code = catalog.codes(["a"])
    both = merged(Scores.of(code, np.array([after])), Scores.of(code, np.array([before])))
    # One event a half-life before the boundary and one after: 2**-1 + 2**1 in new units.
    assert both.codes.tolist() == code.tolist()
    assert abs(float(both.values[0]) - (2.0 + 0.5)) < 1e-9
    assert PREVIOUS_GENERATION_SCALE == 2.0**-512


def test_coalesce_sums_increments():
    writes = coalesce(
        [
            ZIncr("k", "a", 1.0),
            ZIncr("k", "b", 1.0),
            ZIncr("k", "a", 0.5),
            HashIncr("h", "f", 2),
            HashIncr("h", "f", 3),
        ]
    )
    assert writes == [ZIncr("k", "a", 1.5), ZIncr("k", "b", 1.0), HashIncr("h", "f", 5)]


def test_cooccurrence_pairs_weigh_less_the_further_apart_they_were_viewed():
    model = CooccurrenceModel(pair_decay=0.5)
    writes = model.learn([Interaction("u", "c", "product_viewed", 1.0, 0, history=("b", "a"))], {})
    increments = {(w.key, w.member): w.amount for w in writes if isinstance(w, ZIncr)}
    assert increments == {
        (keys.item_neighbours("c", "viewed", 0), "b"): 1.0,
        (keys.item_neighbours("b", "viewed", 0), "c"): 1.0,
        (keys.item_neighbours("c", "viewed", 0), "a"): 0.5,
        (keys.item_neighbours("a", "viewed", 0), "c"): 0.5,
    }


def test_session_items_lead_to_everything_after_them_with_less_weight_per_step():
    model = SessionModel(steps=3, step_decay=0.5)
    batch = [Interaction("u", "d", "product_viewed", 1.0, 0, session_items=("c", "b", "a", "z"))]
    increments = {
        (w.key, w.member): w.amount for w in model.learn(batch, {}) if isinstance(w, ZIncr)
    }
    assert increments == {
        (keys.item_next("c", 0), "d"): 1.0,
        (keys.item_next("b", 0), "d"): 0.5,
        (keys.item_next("a", 0), "d"): 0.25,
    }
    store = MemoryStore()
    store.apply(model.learn(batch, {}))
    query = Query(None, now=0, session_items=("b", "a"))
    proposed = proposals_of(model, query, store)
    # b's list and a's list both hold only d (each normalised to 1): 1 + 0.5.
    assert proposed["d"] == (1.5, "often viewed next after b")


def test_a_contribution_that_underflows_to_zero_is_not_proposed():
    # A neighbour's weight times the history item's decay can round to 0.0; an item whose
    # every contribution is 0 is no candidate (proposing it once raised KeyError).
    now = 10 * DAY
    query = Query("u", now=now, history=(("a", now - 2 * DAY), ("b", now)), session_items=("a",))
    tiny = [("x", 5e-324), ("y", 2.0)]  # normalised: x is 2.5e-324, which rounds to 0.0
    for model in (CooccurrenceModel(), SessionModel()):
        state = {read: tiny for read in model.candidate_reads(query) if read[0] == "ztop"}
        proposed = proposals_of(model, query, state)
        assert set(proposed) <= {"x", "y"} and proposed["y"][0] > 0
        assert proposed.get("x", (0.0,))[0] < proposed["y"][0]
