"""Build the archive store the settings describe (``settings.ARCHIVE``, from ARCHIVE_URL)."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from .base import ArchiveStore
from .local import LocalFolderStore
from .s3 import S3Store

if TYPE_CHECKING:
    from regional_cloud.env import ArchiveConfig


def store_from_config(config: ArchiveConfig, *, setting_name: str = "ARCHIVE_URL") -> ArchiveStore:
    """Return a new store for ``config``: a folder for ``file://``, a bucket for ``s3://``."""
    if config.kind == "file":
        return LocalFolderStore(config.path, setting_name=setting_name)
    if config.kind == "s3":
        return S3Store(config, setting_name=setting_name)
    raise ValueError(f"{setting_name}: unknown archive kind {config.kind!r}")


def get_store() -> ArchiveStore:
    """Return this process's store for ``settings.ARCHIVE``, built once per process.

    The S3 store keeps a connection pool, hence the cache; it is keyed by the
    process id because pooled sockets must not cross a fork (Celery's prefork
    workers, gunicorn). After changing the setting (tests), call :func:`reset_store`.
    """
    return _store_for_process(os.getpid())


@functools.lru_cache(maxsize=1)
def _store_for_process(pid: int) -> ArchiveStore:
    from django.conf import settings

    return store_from_config(settings.ARCHIVE)


def reset_store() -> None:
    """Forget the cached store, so the next :func:`get_store` reads the settings again."""
    _store_for_process.cache_clear()
