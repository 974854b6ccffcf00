"""The registry: a SQLite database (WAL) recording every artifact, its content hash and its parents."""

from tailorlm.registry.store import Artifact, Registry

__all__ = ["Artifact", "Registry"]
