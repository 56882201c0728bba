"""The archive store: where DICOM instances and derived files are kept.

Use :func:`get_store` for the store configured by ARCHIVE_URL and
:func:`instance_key` to name an instance::

    store = get_store()
    stored = store.put(instance_key(study, series, sop), stream, sha256=digest)
    with store.open(stored.key) as data:
        ...
"""

from .base import (
    CHUNK_SIZE,
    ArchiveConflictError,
    ArchiveError,
    ArchiveIntegrityError,
    ArchiveNotFoundError,
    ArchiveStore,
    ArchiveUnavailableError,
    StoredObject,
    instance_key,
    validate_key,
    validate_uid,
)
from .factory import get_store, reset_store, store_from_config
from .local import LocalFolderStore
from .s3 import S3Store

__all__ = [
    "CHUNK_SIZE",
    "ArchiveConflictError",
    "ArchiveError",
    "ArchiveIntegrityError",
    "ArchiveNotFoundError",
    "ArchiveStore",
    "ArchiveUnavailableError",
    "LocalFolderStore",
    "S3Store",
    "StoredObject",
    "get_store",
    "instance_key",
    "reset_store",
    "store_from_config",
    "validate_key",
    "validate_uid",
]
