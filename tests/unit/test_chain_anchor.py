"""The one validator for a hash-chain anchor (`tradecore verify --anchor ID:HASH`)."""

from __future__ import annotations

import pytest

from domain.errors import InvalidCommand
from domain.validation import chain_anchor

HASH = "ab" * 32


def test_an_anchor_is_an_event_id_and_a_lowercased_sha256() -> None:
    assert chain_anchor(f" 42:{HASH.upper()} ") == (42, HASH)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("42", "EVENT_ID:HASH"),
        (f"42:{HASH}:1", "EVENT_ID:HASH"),
        (f"0:{HASH}", "event id"),
        (f"-3:{HASH}", "event id"),
        (f"x:{HASH}", "event id"),
        ("42:abc", "64 hex digits"),
        (f"42:{HASH[:-1]}g", "64 hex digits"),
        (None, "EVENT_ID:HASH"),
    ],
)
def test_a_malformed_anchor_is_refused_naming_what_is_wrong(given: object, named: str) -> None:
    with pytest.raises(InvalidCommand, match=named):
        chain_anchor(given)
