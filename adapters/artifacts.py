"""The artifact store (P0-06): model files content-addressed by their sha256.

An artifact is written to a temporary file in the same folder, flushed to disk and renamed
into place, so a reader never sees half a file; every load checks the hash, so a corrupted
or tampered file is refused, never loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class ArtifactError(Exception):
    """An artifact is missing or does not match its hash."""


class ArtifactMissing(ArtifactError):
    pass


class ArtifactCorrupt(ArtifactError):
    pass


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, content: bytes) -> str:
        """Store ``content``; returns its sha256 (storing it twice is harmless)."""
        sha256 = hashlib.sha256(content).hexdigest()
        target = self.path(sha256)
        if target.exists() and self._matches(target, sha256):
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes:
        """The artifact's bytes, verified. Raises ArtifactMissing, ArtifactCorrupt."""
        target = self.path(sha256)
        try:
            content = target.read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(f"artifact {sha256[:12]}… is missing from {self.root}") from None
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise ArtifactCorrupt(
                f"artifact {sha256[:12]}… fails its hash check (the file hashes to "
                f"{actual[:12]}…): refused"
            )
        return content

    def verify(self, sha256: str) -> None:
        """Raises ArtifactMissing or ArtifactCorrupt unless the artifact is intact."""
        self.get(sha256)

    @staticmethod
    def _matches(target: Path, sha256: str) -> bool:
        return hashlib.sha256(target.read_bytes()).hexdigest() == sha256
