"""How long a statement may wait for the store's answer: the default, a caller's deadline
(nested: the earlier one), the last word past it, and nothing more once the store went
silent in the deadline's block."""

from __future__ import annotations

import time

import pytest

from adapters import answer_deadline as bound
from adapters.answer_deadline import (
    ANSWER_TIMEOUT_SECONDS,
    GIVEN_UP_SECONDS,
    LAST_WORD_SECONDS,
    answer_bound,
    answer_deadline,
    connect_budget,
    given_up,
)


def test_without_a_deadline_a_statement_waits_the_default_and_never_gives_up() -> None:
    assert answer_bound() == ANSWER_TIMEOUT_SECONDS
    assert connect_budget(3) == 3
    assert not given_up()


def test_a_deadline_bounds_each_statement_by_what_is_left_and_nested_ones_keep_the_earlier() -> (
    None
):
    with answer_deadline(10.0):
        assert 9.0 < answer_bound() <= 10.0
        with answer_deadline(30.0):  # later than the outer one: the outer one holds
            assert answer_bound() <= 10.0
        with answer_deadline(5.0):
            assert 4.0 < answer_bound() <= 5.0
        assert 9.0 < answer_bound() <= 10.0
    assert answer_bound() == ANSWER_TIMEOUT_SECONDS


def test_past_the_deadline_a_live_store_still_gets_the_last_word(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bound, "_last_silence", None)
    with answer_deadline(0.0):
        assert answer_bound() == LAST_WORD_SECONDS
        assert connect_budget(3) == 2  # libpq's least
        assert not given_up()


def test_past_the_deadline_after_a_silence_in_its_block_nothing_is_waited_for_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bound, "_last_silence", None)
    with answer_deadline(0.0):
        monkeypatch.setattr(bound, "_last_silence", time.monotonic())  # silent in the block
        assert answer_bound() == GIVEN_UP_SECONDS
        assert given_up()


def test_a_silence_before_the_block_began_does_not_count_against_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bound, "_last_silence", time.monotonic() - 60)  # a past outage
    with answer_deadline(0.0):
        assert answer_bound() == LAST_WORD_SECONDS
        assert not given_up()
