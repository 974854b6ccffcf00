"""The registry: a SQLite database (WAL) recording every artifact, its content hash, its parents, and a
validated meta per kind (see `tailorlm.registry.meta`)."""

from tailorlm.registry.meta import (
    KINDS,
    STATUSES,
    ArtifactMeta,
    BaseMeta,
    BaseOrigin,
    DatasetMeta,
    DocumentMeta,
    EvaluationMeta,
    GateVerdict,
    Kind,
    MetaError,
    ModelMeta,
    Owner,
    RunMeta,
    Status,
)
from tailorlm.registry.store import Artifact, Registry

__all__ = [
    "KINDS",
    "STATUSES",
    "Artifact",
    "ArtifactMeta",
    "BaseMeta",
    "BaseOrigin",
    "DatasetMeta",
    "DocumentMeta",
    "EvaluationMeta",
    "GateVerdict",
    "Kind",
    "MetaError",
    "ModelMeta",
    "Owner",
    "Registry",
    "RunMeta",
    "Status",
]
