"""Seeded, deterministic fault injection for the paper venue.

The n-th request after the faults were set draws from ``Random(f"{seed}:{n}")``; the counter
lives in the venue's database, so the same seed gives the same sequence of faults whichever
process (CLI, worker, a restarted flattener) sends the requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from domain.errors import InvalidCommand
from domain.validation import integer_value


class Fault(Enum):
    NONE = "none"
    NETWORK_ERROR = "network_error"  # the request never reached the venue
    TIMEOUT_NOT_EXECUTED = "timeout_not_executed"  # reached it? no; the caller cannot know
    TIMEOUT_EXECUTED = "timeout_executed"  # done at the venue, the answer was lost
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"  # only for new orders


@dataclass(frozen=True)
class FaultSettings:
    error_rate: Decimal = Decimal(0)
    timeout_rate: Decimal = Decimal(0)
    partial_fill_rate: Decimal = Decimal(0)
    rate_limit_rate: Decimal = Decimal(0)
    reject_rate: Decimal = Decimal(0)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "error_rate",
            "timeout_rate",
            "partial_fill_rate",
            "rate_limit_rate",
            "reject_rate",
        ):
            value = getattr(self, name)
            if not Decimal(0) <= value <= Decimal(1):
                raise InvalidCommand(f"{name} must be between 0 and 1, got {value}")
        integer_value(self.seed, "seed")  # held in a BigInteger column
        if self.error_rate + self.timeout_rate + self.rate_limit_rate + self.reject_rate > 1:
            raise InvalidCommand(
                "error, timeout, rate-limit and reject rates add up to more than 1"
            )

    @property
    def active(self) -> bool:
        return any(
            (
                self.error_rate,
                self.timeout_rate,
                self.partial_fill_rate,
                self.rate_limit_rate,
                self.reject_rate,
            )
        )


@dataclass(frozen=True)
class Draw:
    fault: Fault
    partial_fraction: Decimal | None  # a market order fills only this fraction (IOC)


def draw(settings: FaultSettings, n: int, *, new_order: bool) -> Draw:
    """The fault of the n-th request (pure: the same inputs give the same draw)."""
    rng = random.Random(f"{settings.seed}:{n}")  # noqa: S311 - simulation, not security
    u = Decimal(str(rng.random()))
    fault = Fault.NONE
    timeout = (
        Fault.TIMEOUT_EXECUTED if rng.random() < 0.5 else Fault.TIMEOUT_NOT_EXECUTED
    )  # half of the timeouts executed at the venue
    edges = (
        (settings.error_rate, Fault.NETWORK_ERROR),
        (settings.timeout_rate, timeout),
        (settings.rate_limit_rate, Fault.RATE_LIMITED),
        (settings.reject_rate if new_order else Decimal(0), Fault.REJECTED),
    )
    edge = Decimal(0)
    for rate, outcome in edges:
        edge += rate
        if u < edge:
            fault = outcome
            break
    partial = None
    if new_order and rng.random() < float(settings.partial_fill_rate):
        partial = Decimal(str(round(rng.uniform(0.2, 0.8), 4)))
    return Draw(fault, partial)
