"""The slate refresher's bookkeeping: who is ranked next, and how much time it may take."""

from __future__ import annotations

import time

from currents.settings import Settings
from streams.slates import SlateBuilder, SlateRefresher

SETTINGS = Settings(kafka_bootstrap="unused:0", redis_url="redis://unused")


def refresher(backlogged: bool = False) -> SlateRefresher:
    return SlateRefresher(
        None,  # type: ignore[arg-type]  # no I/O here
        SlateBuilder(SETTINGS),
        lambda writes: None,
        settings=SETTINGS,
        backlogged=lambda: backlogged,
    )


def test_a_shopper_marked_again_before_their_turn_is_ranked_once_in_first_mark_order() -> None:
    slates = refresher()
    slates.mark(["a", "b"])
    slates.mark(["c", "a"])
    assert slates.take(2) == ["a", "b"]
    slates.mark(["a"])
    assert slates.take(10) == ["c", "a"]
    assert slates.take(10) == []


def test_shoppers_the_api_asked_for_go_first() -> None:
    slates = refresher()
    slates.mark(["a", "b", "c"])
    slates.mark(["c", "d"], requested=True)
    assert slates.take(3) == ["c", "d", "a"]
    assert slates.take(3) == ["b"]


def test_idle_time_is_credit_unless_batches_are_queued() -> None:
    idle = refresher()
    queued = refresher(backlogged=True)
    time.sleep(0.05)  # neither process works meanwhile: this one sits idle
    assert idle._earn() > 0.03
    # Queued batches: only the share of what others used, and they used next to nothing.
    assert queued._earn() < 0.01


def test_credit_spent_is_waited_for() -> None:
    slates = refresher(backlogged=True)
    slates._credit = -0.02  # a chunk just overran its credit
    wait = slates._wait_s()
    assert 0 < wait <= 0.05


def test_the_api_ranks_behind_shoppers_on_the_spot_only_within_its_budget() -> None:
    from serving.recommend import Recommender

    settings = Settings(
        kafka_bootstrap="unused:0", redis_url="redis://unused", slate_catch_up_per_s=2
    )
    recommender = Recommender(None, settings, None)  # type: ignore[arg-type]  # no I/O here
    assert [recommender._catch_up() for _ in range(3)] == [True, True, False]
    time.sleep(0.6)  # one more token at two a second
    assert recommender._catch_up() is True
    assert recommender._catch_up() is False
