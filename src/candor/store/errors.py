"""Errors raised by the store. Each message is one sentence a person can act on."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class WorkspaceError(StoreError):
    """A workspace cannot be created, opened or used as asked."""


class NotAWorkspaceError(WorkspaceError):
    """The folder is not a Candor workspace; nothing was created there."""


class CannotCreateWorkspaceError(WorkspaceError):
    """`Workspace.create` was pointed at a file or a folder that is not empty."""


class WorkspaceHomeUnsetError(WorkspaceError):
    """CANDOR_HOME is not set."""


class SchemaVersionError(WorkspaceError):
    """The workspace database is not at the schema revision this Candor expects."""


class WorkspaceBusyError(WorkspaceError):
    """Another connection kept the workspace database's write lock past the busy timeout."""


class ProvenanceError(StoreError, ValueError):
    """A gallery image's provenance is incomplete or not allowed in this workspace."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"provenance field {field!r}: {problem}")


class GalleryError(StoreError, ValueError):
    """A gallery record is inconsistent (bad hash, box, dimension, face choice)."""


class VaultError(StoreError):
    """Biometric data could not be stored, read or erased as asked."""


class BiometricNotFoundError(VaultError):
    """The vault holds no file for that content address."""


class BiometricIntegrityError(VaultError):
    """Stored or offered bytes do not match their sha256 content address."""


class TemplateFormatError(VaultError, ValueError):
    """A template vector or blob has the wrong shape, length or values."""


class ScrubError(VaultError):
    """The database's write-ahead log could not be checkpointed and truncated."""
