"""The model registry (P0-06): one aggregate per model name. Versions are consecutive from 1;
a promotion is one event that every consumer follows, so no two modules can disagree about
which version is in force — now or at any past instant.

Promoting an unknown version is invalid; the application refuses to promote an artifact
that fails its hash check before asking (``ArtifactRefused``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.ids import NAMESPACE


class UnknownModelVersion(InvalidCommand):
    """No such version of the model."""


class NothingToRollBack(RefusedBySafetyRule):
    """No earlier promotion to return to."""


class ArtifactRefused(RefusedBySafetyRule):
    """The version's artifact is missing or fails its hash check: it is never promoted."""


def model_id(name: str) -> UUID:
    return uuid5(NAMESPACE, f"tradecore/model/{name}")


class ModelRegistry(TradecoreAggregate):
    class Created(TradecoreAggregate.Created):
        name: str

    class ModelRegistered(TradecoreAggregate.Event):
        name: str
        version: int
        sha256: str
        data_from: datetime
        data_to: datetime
        metrics: dict[str, float]
        actor: str

    class ModelPromoted(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "model.promoted"
        name: str
        new_version: int
        old_version: int | None
        actor: str
        reason: str

    class ModelRolledBack(TradecoreAggregate.Event):
        name: str
        new_version: int
        old_version: int
        actor: str
        reason: str

    @staticmethod
    def create_id(*_: Any, name: str, **__: Any) -> UUID:
        return model_id(name)

    @event(Created)
    def __init__(self, *, name: str) -> None:
        self.name = name
        # Keys are version numbers as text: a snapshot (JSON) keeps them as they are.
        self.versions: dict[str, dict[str, Any]] = {}
        self.promoted: int | None = None
        self.promotions: list[int] = []  # versions promoted, in order (for rollbacks)

    @classmethod
    def start(cls, *, name: str, timestamp: datetime) -> ModelRegistry:
        text = require_text(name, "model name")
        if not text.replace("-", "").replace("_", "").isalnum():
            raise InvalidCommand(f"model name must be letters, digits, - or _: {name!r}")
        return cls._create(cls.Created, name=text, timestamp=require_aware(timestamp))

    def register(
        self,
        *,
        sha256: str,
        data_from: datetime,
        data_to: datetime,
        metrics: dict[str, float],
        actor: str,
        timestamp: datetime,
    ) -> int:
        """Record a trained artifact as the next version; returns it."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidCommand("sha256 must be 64 lowercase hex digits")
        version = len(self.versions) + 1
        self._registered(
            name=self.name,
            version=version,
            sha256=sha256,
            data_from=require_aware(data_from),
            data_to=require_aware(data_to),
            metrics={k: float(v) for k, v in metrics.items()},
            actor=require_text(actor, "actor"),
            timestamp=require_aware(timestamp),
        )
        return version

    @event(ModelRegistered)
    def _registered(
        self,
        *,
        name: str,
        version: int,
        sha256: str,
        data_from: datetime,
        data_to: datetime,
        metrics: dict[str, float],
        actor: str,
        timestamp: datetime,
    ) -> None:
        self.versions[str(version)] = {
            "sha256": sha256,
            "data_from": data_from,
            "data_to": data_to,
            "metrics": metrics,
            "registered_at": timestamp,
        }

    def promote(self, *, version: int, actor: str, reason: str, timestamp: datetime) -> bool:
        """Put ``version`` in force; False if it already is. Raises UnknownModelVersion."""
        if str(version) not in self.versions:
            raise UnknownModelVersion(f"model {self.name} has no version {version}")
        if version == self.promoted:
            return False
        self._promoted(
            name=self.name,
            new_version=version,
            old_version=self.promoted,
            actor=require_text(actor, "actor"),
            reason=require_text(reason, "reason"),
            timestamp=require_aware(timestamp),
        )
        return True

    @event(ModelPromoted)
    def _promoted(
        self,
        *,
        name: str,
        new_version: int,
        old_version: int | None,
        actor: str,
        reason: str,
        timestamp: datetime,
    ) -> None:
        self.promoted = new_version
        self.promotions.append(new_version)

    def sha256_of(self, version: int) -> str:
        """The artifact hash of ``version``; raises UnknownModelVersion."""
        found = self.versions.get(str(version))
        if found is None:
            raise UnknownModelVersion(f"model {self.name} has no version {version}")
        return str(found["sha256"])

    def rollback_target(self) -> int:
        """The version a rollback returns to: the one in force before the current one."""
        earlier = [v for v in self.promotions if v != self.promoted]
        if self.promoted is None or not earlier:
            raise NothingToRollBack(f"model {self.name} has no earlier promotion to return to")
        return earlier[-1]

    def roll_back(self, *, actor: str, reason: str, timestamp: datetime) -> int:
        """Return to the previously promoted version; returns it."""
        target = self.rollback_target()
        assert self.promoted is not None
        self._rolled_back(
            name=self.name,
            new_version=target,
            old_version=self.promoted,
            actor=require_text(actor, "actor"),
            reason=require_text(reason, "reason"),
            timestamp=require_aware(timestamp),
        )
        return target

    @event(ModelRolledBack)
    def _rolled_back(
        self,
        *,
        name: str,
        new_version: int,
        old_version: int,
        actor: str,
        reason: str,
        timestamp: datetime,
    ) -> None:
        # The rolled-back version leaves the history, so a second rollback goes further back.
        while self.promotions and self.promotions[-1] == old_version:
            self.promotions.pop()
        self.promoted = new_version
        if not self.promotions or self.promotions[-1] != new_version:
            self.promotions.append(new_version)
