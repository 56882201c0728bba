"""The archive store's interface, its errors, and the rules for keys.

An archive store keeps immutable blobs (DICOM instances, later derived files)
under keys such as ``dicom/<study>/<series>/<sop>.dcm``. Two implementations
share this interface: :class:`studies.archive.local.LocalFolderStore` (embedded
default, one folder) and :class:`studies.archive.s3.S3Store` (any S3 server,
through the ``minio`` SDK). The database index, not the store, is the source of
truth for what exists; the store guarantees that what sits at a key is exactly
what was verified when it was written.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
# S3 caps keys at 1024 bytes; the folder store keeps the same limit so a key
# that works in one store works in the other.
MAX_KEY_LENGTH = 1024
# Segments starting with "." are refused: that rules out "." and "..", and
# leaves names such as ".tmp/" to the stores for their own bookkeeping.
_KEY_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# PS3.5 9.1: a UID is digits and dots, at most 64 characters, no empty component.
_UID_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
UID_MAX_LENGTH = 64


class ArchiveError(Exception):
    """Base of every error the archive store raises."""


class ArchiveIntegrityError(ArchiveError):
    """The written bytes differ from the size or SHA-256 the caller expected,
    or a stored object no longer hashes to what was recorded."""


class ArchiveConflictError(ArchiveError):
    """A different object already sits at the key and overwriting was not asked for."""


class ArchiveUnavailableError(ArchiveError):
    """The archive cannot be reached, or refuses our credentials or writes."""


class ArchiveNotFoundError(ArchiveError):
    """No object at the key."""


@dataclass(frozen=True)
class StoredObject:
    """What the store knows about one object.

    ``sha256`` is the lowercase hex digest, or ``None`` when the store has no
    record of it (the folder store keeps none; the index does).
    """

    key: str
    size: int
    sha256: str | None


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid archive key, else raise ``ValueError``.

    A key is ``/``-separated segments of ``[A-Za-z0-9._-]``, no segment starting
    with ``.`` (so no ``..``), no leading or trailing slash, at most 1024 bytes.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"invalid archive key {key!r}: empty or longer than {MAX_KEY_LENGTH}")
    if not _KEY_RE.fullmatch(key):
        raise ValueError(
            f"invalid archive key {key!r}: use segments of [A-Za-z0-9._-] separated by '/', "
            "none starting with '.'"
        )
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it could start a valid key (``""`` lists everything)."""
    if prefix == "":
        return prefix
    probe = prefix + "x" if prefix.endswith("/") else prefix
    validate_key(probe)
    return prefix


def validate_sha256(value: str | None) -> str | None:
    """Return the digest lowercased, or raise ``ValueError`` when it is not 64 hex digits."""
    if value is None:
        return None
    digest = value.lower()
    if not _SHA256_RE.fullmatch(digest):
        raise ValueError(f"expected a SHA-256 as 64 hex digits, got {value!r}")
    return digest


def validate_uid(uid: str) -> str:
    """Return ``uid`` if it is a DICOM UID (PS3.5 9.1), else raise ``ValueError``."""
    if not isinstance(uid, str) or len(uid) > UID_MAX_LENGTH or not _UID_RE.fullmatch(uid):
        raise ValueError(f"not a DICOM UID (digits and dots, at most 64 characters): {uid!r}")
    return uid


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Return the archive key of one DICOM instance: ``dicom/<study>/<series>/<sop>.dcm``."""
    return f"dicom/{validate_uid(study_uid)}/{validate_uid(series_uid)}/{validate_uid(sop_uid)}.dcm"


def check_expected(
    key: str, *, size: int, sha256: str, expected_size: int | None, expected_sha256: str | None
) -> None:
    """Raise ``ArchiveIntegrityError`` when what was written is not what the caller expected."""
    if expected_size is not None and size != expected_size:
        raise ArchiveIntegrityError(
            f"{key}: expected {expected_size} bytes, received {size}; nothing was stored"
        )
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise ArchiveIntegrityError(
            f"{key}: expected SHA-256 {expected_sha256}, received {sha256}; nothing was stored"
        )


class HashingReader:
    """Wrap a readable binary stream, hashing and counting what passes through.

    ``limit`` stops a stream that runs past the size the caller announced as
    soon as it does, so a wrong upload is not carried to its end.
    """

    def __init__(self, source: BinaryIO, *, limit: int | None = None) -> None:
        self._source = source
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` bytes (all that is left for ``n < 0``); ``b""`` at the end."""
        if n is None or n < 0:
            parts = list(iter(lambda: self._read_some(CHUNK_SIZE), b""))
            return b"".join(parts)
        if n == 0:
            return b""
        # The minio SDK asks for whole parts; filling them here, rather than
        # letting it concatenate short reads, keeps copying linear.
        first = self._read_some(n)
        if len(first) in (0, n):
            return first
        parts = [first]
        remaining = n - len(first)
        while remaining:
            data = self._read_some(remaining)
            if not data:
                break
            parts.append(data)
            remaining -= len(data)
        return b"".join(parts)

    def _read_some(self, n: int) -> bytes:
        data = self._source.read(n)
        if not data:
            self.eof = True
            return b""
        if not isinstance(data, bytes):
            data = bytes(data)
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise ArchiveIntegrityError(
                f"the stream is longer than the expected {self._limit} bytes; nothing was stored"
            )
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def remaining_length(source: BinaryIO) -> int | None:
    """Return how many bytes a seekable stream has left, or ``None`` when it cannot tell."""
    try:
        if not source.seekable():
            return None
        position = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(position)
    except (AttributeError, OSError, ValueError):
        return None
    return max(end - position, 0)


class ArchiveStore(abc.ABC):
    """Where archived objects live. Keys are validated by :func:`validate_key`.

    Every method may raise :class:`ArchiveUnavailableError` when the backend
    cannot be reached; methods naming one key raise ``ValueError`` for an
    invalid key.
    """

    #: The setting the store was configured from, named in error messages.
    setting_name: str = "ARCHIVE_URL"

    @abc.abstractmethod
    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int | None = None,
        sha256: str | None = None,
        overwrite: bool = False,
    ) -> StoredObject:
        """Store the bytes read from ``source`` at ``key`` and return what was stored.

        The stream is read in chunks, never whole, and hashed while written. If
        ``size`` or ``sha256`` is given and the bytes differ, raise
        :class:`ArchiveIntegrityError` and leave nothing behind. Writing the same
        bytes again is a no-op that succeeds; writing different bytes to an
        occupied key raises :class:`ArchiveConflictError` unless ``overwrite``.
        Readers never see a partial object at ``key``.
        """

    @abc.abstractmethod
    def open(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Return a context manager giving a stream of the object's bytes.

        Raise :class:`ArchiveNotFoundError` when there is no object at ``key``.
        """

    @abc.abstractmethod
    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Return up to ``length`` bytes from offset ``start`` (fewer at the end, ``b""`` past it).

        Raise :class:`ArchiveNotFoundError` when there is no object at ``key``.
        """

    @abc.abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """Return the object's size and recorded SHA-256, or ``None`` when it does not exist."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""

    @abc.abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every key starting with ``prefix`` (in no guaranteed order)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Verify the archive can be reached and written, creating it if absent.

        Raise :class:`ArchiveUnavailableError` with a message naming the setting
        and the endpoint or folder when it cannot.
        """

    def exists(self, key: str) -> bool:
        """Return whether an object sits at ``key``."""
        return self.stat(key) is not None

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the object's bytes in chunks of at most ``chunk_size``.

        The object is opened on the first ``next()``, so a missing key raises
        :class:`ArchiveNotFoundError` there; close the generator to release the
        connection early.
        """
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        with self.open(key) as stream:
            while chunk := stream.read(chunk_size):
                yield chunk

    def hash_object(self, key: str) -> str:
        """Return the SHA-256 of the stored bytes, re-read from the store (for fixity checks)."""
        digest = hashlib.sha256()
        for chunk in self.iter_chunks(key):
            digest.update(chunk)
        return digest.hexdigest()
