"""The small aggregate the sustained-load benchmark writes, one per writer thread.

It lives in a module of its own (not in ``bench_replay``, which runs as ``__main__``) so its
event topics (``benchmarks.load_aggregate:LoadTick.*``) are the same in the writing process
and in the worker process that projects them.
"""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event


class LoadTick(Aggregate):
    """One writer's counter: each tick is one small event, saved on its own."""

    def __init__(self, writer: int) -> None:
        self.writer = writer
        self.ticks = 0

    @event("Ticked")
    def tick(self, number: int) -> None:
        self.ticks = number
