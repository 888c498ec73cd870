"""A test-only store-fault harness: make the event store fail at chosen calls.

Like the paper venue's seeded faults (adapters/paper/faults.py), but for the store. It wraps
the calls a core makes to its store — the event recorder's and the snapshot recorder's
reads and inserts, the recorder's version check, and every statement the read-model engine
runs — counts them, and fails the ones a test picks:

- ``error``: the call fails before it reaches the store (a broken connection);
- ``timeout``: the call waits ``timeout_delay`` seconds, then fails as a timeout;
- ``lost_ack``: the call is made (an insert commits), then fails as if the answer was lost.

Only the objects of one core are wrapped (instance attributes and an engine event), so
nothing outside the test is affected; ``close()`` restores them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from eventsourcing.persistence import OperationalError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError as SAOperationalError

from app.bootstrap import Core

FaultKind = Literal["error", "timeout", "lost_ack"]
FAULT_KINDS: tuple[FaultKind, ...] = ("error", "timeout", "lost_ack")


@dataclass
class StoreFaults:
    """Counts a core's store calls and fails the chosen ones (by index, or by a rule)."""

    timeout_delay: float = 0.2
    calls: list[str] = field(default_factory=list)
    plan: dict[int, FaultKind] = field(default_factory=dict)
    # rule(call name, call index, what it carries: the topics of an insert) -> a fault or None
    rule: Callable[[str, int, str], FaultKind | None] | None = None
    injected: list[tuple[int, str, FaultKind]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    # -- wiring -------------------------------------------------------------------------------

    def attach(self, core: Core, *, engine: bool = False) -> StoreFaults:
        """Wrap ``core``'s event store; with ``engine``, the read models' engine too (which
        the paper venue shares: its calls then count as store calls)."""
        store = core.store
        for name in ("insert_events", "select_events", "select_notifications", "current_versions"):
            self._wrap(store.recorder, name, f"events.{name}")
        snapshots = store.snapshots
        assert snapshots is not None
        for name in ("insert_events", "select_events"):
            self._wrap(snapshots.recorder, name, f"snapshots.{name}")
        if engine:
            self._watch_engine(core.engine)
        return self

    def close(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> StoreFaults:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plans --------------------------------------------------------------------------------

    def fail_at(self, index: int, kind: FaultKind) -> None:
        self.plan[index] = kind

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.plan.clear()
            self.injected.clear()
            self.rule = None

    # -- internals ----------------------------------------------------------------------------

    def _decide(self, name: str, detail: str = "") -> tuple[int, FaultKind | None]:
        with self._lock:
            index = len(self.calls)
            self.calls.append(name)
            kind = self.plan.get(index)
            if kind is None and self.rule is not None:
                kind = self.rule(name, index, detail)
            if kind is not None:
                self.injected.append((index, name, kind))
            return index, kind

    def _fail(self, index: int, name: str, kind: FaultKind) -> OperationalError:
        if kind == "timeout":
            time.sleep(self.timeout_delay)  # the time a store that does not answer costs
        return OperationalError(f"injected {kind} at store call {index} ({name})")

    def _wrap(self, target: Any, method: str, name: str) -> None:
        original = getattr(target, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            detail = ""
            if method == "insert_events" and args:
                detail = " ".join(stored.topic for stored in args[0])
            index, kind = self._decide(name, detail)
            if kind in ("error", "timeout"):
                raise self._fail(index, name, kind)
            result = original(*args, **kwargs)
            if kind == "lost_ack":
                raise self._fail(index, name, kind)
            return result

        setattr(target, method, wrapper)
        self._undo.append(lambda: delattr(target, method))

    def _watch_engine(self, engine: Engine) -> None:
        pending: dict[int, tuple[int, FaultKind]] = {}

        def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            index, kind = self._decide(f"engine:{statement.split(maxsplit=1)[0].lower()}")
            if kind in ("error", "timeout"):
                error = self._fail(index, statement, kind)
                raise SAOperationalError(statement, None, error)
            if kind == "lost_ack":
                pending[id(cursor)] = (index, kind)

        def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            marked = pending.pop(id(cursor), None)
            if marked is not None:
                raise SAOperationalError(
                    statement, None, self._fail(marked[0], statement, "lost_ack")
                )

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        self._undo.append(lambda: event.remove(engine, "before_cursor_execute", before))
        self._undo.append(lambda: event.remove(engine, "after_cursor_execute", after))


def is_insert(name: str) -> bool:
    return name.endswith("insert_events")
