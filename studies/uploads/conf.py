"""The limits of browser uploads, read from settings with their defaults.

Set any of these in settings (or tests) to change them; the defaults suit a
clinic on a slow line uploading CD exports and phone photos.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

MiB = 1024 * 1024
GiB = 1024 * MiB


def chunk_size() -> int:
    """Bytes per chunk the server asks for (UPLOAD_CHUNK_SIZE, default 2 MiB)."""
    return int(getattr(settings, "UPLOAD_CHUNK_SIZE", 2 * MiB))


def max_file_bytes() -> int:
    """Largest file one upload may declare (UPLOAD_MAX_BYTES, default STOW_MAX_BYTES)."""
    return int(getattr(settings, "UPLOAD_MAX_BYTES", getattr(settings, "STOW_MAX_BYTES", 4 * GiB)))


def expiry() -> timedelta:
    """How long an idle upload is kept before cleanup (UPLOAD_EXPIRY_HOURS, default 24)."""
    return timedelta(hours=float(getattr(settings, "UPLOAD_EXPIRY_HOURS", 24)))


def assembly_timeout() -> timedelta:
    """After how long a completion that never finished (its process died) may be retried.

    UPLOAD_ASSEMBLY_TIMEOUT_MINUTES, default 120: longer than any zip takes to ingest.
    """
    return timedelta(minutes=float(getattr(settings, "UPLOAD_ASSEMBLY_TIMEOUT_MINUTES", 120)))


def zip_max_members() -> int:
    """Most entries a zip may hold (UPLOAD_ZIP_MAX_MEMBERS, default 20 000)."""
    return int(getattr(settings, "UPLOAD_ZIP_MAX_MEMBERS", 20_000))


def zip_max_uncompressed() -> int:
    """Most bytes a zip may expand to (UPLOAD_ZIP_MAX_BYTES, default 8 GiB)."""
    return int(getattr(settings, "UPLOAD_ZIP_MAX_BYTES", 8 * GiB))


def photo_max_bytes() -> int:
    """Largest photo file for Secondary Capture (UPLOAD_PHOTO_MAX_BYTES, default 30 MiB)."""
    return int(getattr(settings, "UPLOAD_PHOTO_MAX_BYTES", 30 * MiB))


def photo_max_pixels() -> int:
    """Most pixels a photo may have (UPLOAD_PHOTO_MAX_PIXELS, default 50 megapixels)."""
    return int(getattr(settings, "UPLOAD_PHOTO_MAX_PIXELS", 50_000_000))


def spool_memory_bytes() -> int:
    """Bytes an assembled file keeps in memory before it spills to a temporary file."""
    return int(getattr(settings, "UPLOAD_SPOOL_MEMORY_BYTES", 8 * MiB))
