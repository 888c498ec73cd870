"""Model commands (P0-06): register a trained artifact, promote, roll back.

A promotion or rollback checks the artifact's hash first: a version whose file is missing
or altered is refused (exit 3) and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.utils import get_topic
from sqlalchemy import Engine

from adapters.artifacts import ArtifactError, ArtifactStore
from adapters.eventstore import PostgresLogReader, TradecoreEventStore
from adapters.repository import WRITER, Repository
from domain.model_registry import ArtifactRefused, ModelRegistry, UnknownModelVersion, model_id


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    sha256: str


class ModelService:
    def __init__(
        self,
        store: TradecoreEventStore,
        artifacts: ArtifactStore,
        clock: Callable[[], datetime],
        engine: Engine,
        reader: PostgresLogReader,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.clock = clock
        self.engine = engine
        self.reader = reader

    def register(
        self,
        name: str,
        *,
        artifact: bytes,
        data_from: datetime,
        data_to: datetime,
        metrics: dict[str, float],
        actor: str,
    ) -> Registered:
        """Store the artifact, then record it as the model's next version."""
        sha256 = self.artifacts.put(artifact)

        def change(registry: ModelRegistry) -> int:
            return registry.register(
                sha256=sha256,
                data_from=data_from,
                data_to=data_to,
                metrics=metrics,
                actor=actor,
                timestamp=self.clock(),
            )

        return Registered(name, self._retrying(name, change, create=True), sha256)

    def promote(self, name: str, version: int, *, actor: str, reason: str) -> bool:
        """Put ``version`` in force; False if it already was. Raises UnknownModelVersion,
        ArtifactRefused."""

        def change(registry: ModelRegistry) -> bool:
            self._verify(registry, version)
            return registry.promote(
                version=version, actor=actor, reason=reason, timestamp=self.clock()
            )

        promoted: bool = self._retrying(name, change)
        return promoted

    def roll_back(self, name: str, *, actor: str, reason: str) -> int:
        """Return to the version in force before; returns it. Raises NothingToRollBack,
        ArtifactRefused."""

        def change(registry: ModelRegistry) -> int:
            self._verify(registry, registry.rollback_target())
            return registry.roll_back(actor=actor, reason=reason, timestamp=self.clock())

        target: int = self._retrying(name, change)
        return target

    def registry(self, name: str) -> ModelRegistry | None:
        return Repository(self.store).find(ModelRegistry, model_id(name))

    def names(self) -> list[str]:
        topic = get_topic(ModelRegistry.Created)
        with self.engine.connect() as conn:
            rows = self.reader.latest(conn, topics=[topic], limit=10_000)
        names = [self.store.mapper.to_domain_event(stored) for _, stored in rows]
        return sorted(str(getattr(e, "name", "")) for e in names)

    def _verify(self, registry: ModelRegistry, version: int) -> None:
        try:
            self.artifacts.verify(registry.sha256_of(version))
        except ArtifactError as e:
            raise ArtifactRefused(f"model {registry.name} v{version}: {e}") from None

    def _retrying(
        self, name: str, change: Callable[[ModelRegistry], Any], *, create: bool = False
    ) -> Any:
        def attempt() -> Any:
            registry = self.registry(name)
            if registry is None:
                if not create:
                    raise UnknownModelVersion(f"no model named {name!r}")
                registry = ModelRegistry.start(name=name, timestamp=self.clock())
            result = change(registry)
            Repository(self.store).save(registry)
            return result

        return WRITER.run(attempt, what=f"model {name}")
