"""The model registry's rules, and the artifact store's integrity checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.artifacts import ArtifactCorrupt, ArtifactMissing, ArtifactStore
from domain.errors import InvalidCommand
from domain.model_registry import ModelRegistry, NothingToRollBack, UnknownModelVersion

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHA = "a" * 64


def registry_with(versions: int) -> ModelRegistry:
    registry = ModelRegistry.start(name="signal", timestamp=T0)
    for _ in range(versions):
        registry.register(
            sha256=SHA, data_from=T0, data_to=T0, metrics={"accuracy": 0.5}, actor="t", timestamp=T0
        )
    return registry


def test_versions_are_consecutive_from_one() -> None:
    registry = registry_with(0)
    numbers = [
        registry.register(sha256=SHA, data_from=T0, data_to=T0, metrics={}, actor="t", timestamp=T0)
        for _ in range(3)
    ]
    assert numbers == [1, 2, 3]


def test_promoting_an_unknown_version_is_refused_and_records_nothing() -> None:
    registry = registry_with(1)
    with pytest.raises(UnknownModelVersion):
        registry.promote(version=2, actor="t", reason="r", timestamp=T0)
    assert registry.promoted is None


def test_promotions_record_old_and_new_and_a_repeat_is_a_no_op() -> None:
    registry = registry_with(2)
    assert registry.promote(version=1, actor="t", reason="r", timestamp=T0)
    assert registry.promote(version=2, actor="t", reason="r", timestamp=T0)
    assert not registry.promote(version=2, actor="t", reason="r", timestamp=T0)
    promoted = [e for e in registry.pending_events if isinstance(e, ModelRegistry.ModelPromoted)]
    assert [(e.old_version, e.new_version) for e in promoted] == [(None, 1), (1, 2)]


def test_rollbacks_walk_back_through_the_promotions() -> None:
    registry = registry_with(3)
    with pytest.raises(NothingToRollBack):
        registry.roll_back(actor="t", reason="r", timestamp=T0)
    for version in (1, 2, 3):
        registry.promote(version=version, actor="t", reason="r", timestamp=T0)
    assert registry.roll_back(actor="t", reason="r", timestamp=T0) == 2
    assert registry.roll_back(actor="t", reason="r", timestamp=T0) == 1
    with pytest.raises(NothingToRollBack):
        registry.roll_back(actor="t", reason="r", timestamp=T0)
    assert registry.promoted == 1


def test_bad_names_and_hashes_are_refused() -> None:
    with pytest.raises(InvalidCommand):
        ModelRegistry.start(name="../etc", timestamp=T0)
    with pytest.raises(InvalidCommand):
        registry_with(0).register(
            sha256="xyz", data_from=T0, data_to=T0, metrics={}, actor="t", timestamp=T0
        )


def test_an_artifact_is_stored_by_its_hash_and_checked_on_every_load(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put(b"model bytes")
    assert store.get(sha) == b"model bytes" and store.put(b"model bytes") == sha
    assert not list(store.path(sha).parent.glob(".incoming-*"))  # no temporary left behind

    store.path(sha).write_bytes(b"model bytez")
    with pytest.raises(ArtifactCorrupt, match="hash check"):
        store.get(sha)
    with pytest.raises(ArtifactMissing):
        store.get("b" * 64)
