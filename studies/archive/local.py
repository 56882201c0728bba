"""The archive in one local folder: the embedded default and the development store.

Each object is one file at ``<root>/<key>``. A write goes to a temporary file
under ``<root>/.tmp/`` (same file system, so the rename is atomic), is flushed
and fsync'ed, verified, then linked into place and its directory fsync'ed: a
crash leaves either the whole verified object or none, never a torn one.
Files are created readable by the service's user only (mode 0600): they hold
patient data.

The folder store records no SHA-256 of its own: :meth:`LocalFolderStore.stat`
returns ``sha256=None`` and the index keeps the digest written at ingest.
Sidecar files would double the files and could disagree with their object
after a crash; extended attributes are missing on some file systems (older
tmpfs, some network mounts). :meth:`hash_object` re-reads the file when the
digest is needed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from .base import (
    CHUNK_SIZE,
    ArchiveConflictError,
    ArchiveNotFoundError,
    ArchiveStore,
    ArchiveUnavailableError,
    HashingReader,
    StoredObject,
    check_expected,
    validate_key,
    validate_prefix,
    validate_sha256,
)

TMP_DIR_NAME = ".tmp"
# File systems without hard links answer one of these; there we fall back to
# check-then-rename, which loses only the atomic "create if absent".
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class LocalFolderStore(ArchiveStore):
    """An archive kept in the folder ``root`` (created on first write)."""

    def __init__(self, root: str | os.PathLike[str], *, setting_name: str = "ARCHIVE_URL") -> None:
        self.root = Path(root)
        self.setting_name = setting_name

    def __repr__(self) -> str:
        return f"LocalFolderStore({str(self.root)!r})"

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int | None = None,
        sha256: str | None = None,
        overwrite: bool = False,
    ) -> StoredObject:
        validate_key(key)
        expected_sha256 = validate_sha256(sha256)
        if size is not None and size < 0:
            raise ValueError("size must not be negative")
        final = self._path(key)
        tmp = self._write_temporary(source, limit=size)
        try:
            stored = StoredObject(key=key, size=tmp.size, sha256=tmp.sha256)
            check_expected(
                key,
                size=stored.size,
                sha256=tmp.sha256,
                expected_size=size,
                expected_sha256=expected_sha256,
            )
            with self._fs_errors(key):
                _makedirs_durable(final.parent, stop_at=self.root)
                if overwrite:
                    os.replace(tmp.path, final)
                else:
                    self._link_new(tmp.path, final, stored)
                _fsync_dir(final.parent)
            return stored
        finally:
            tmp.path.unlink(missing_ok=True)

    def _write_temporary(self, source: BinaryIO, *, limit: int | None) -> _TempFile:
        with self._fs_errors():
            tmp_dir = self.root / TMP_DIR_NAME
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        path = Path(name)
        try:
            reader = HashingReader(source, limit=limit)
            with os.fdopen(fd, "wb") as out:
                # Errors reading the source are the caller's; only writing is ours.
                while chunk := reader.read(CHUNK_SIZE):
                    with self._fs_errors():
                        out.write(chunk)
                with self._fs_errors():
                    out.flush()
                    os.fsync(out.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return _TempFile(path=path, size=reader.size, sha256=reader.hexdigest())

    @contextlib.contextmanager
    def _fs_errors(self, key: str | None = None) -> Iterator[None]:
        """Report file-system failures (full disk, read-only mount) as archive errors."""
        try:
            yield
        except (NotADirectoryError, IsADirectoryError) as exc:
            if key is None:
                raise self._unavailable(exc) from exc
            raise ArchiveConflictError(
                f"{key}: a folder of other keys, or an object, is in the way"
            ) from exc
        except OSError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: OSError) -> ArchiveUnavailableError:
        return ArchiveUnavailableError(
            f"{self.setting_name}: cannot write to the archive folder {self.root} "
            f"({exc.strerror or exc})"
        )

    def _link_new(self, tmp: Path, final: Path, stored: StoredObject) -> None:
        """Put ``tmp`` at ``final`` unless something is there; accept identical bytes."""
        # A concurrent delete can remove what we found between the two steps: try again.
        for _attempt in range(3):
            try:
                os.link(tmp, final)
                return
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in _NO_LINK_ERRNOS:
                    raise
                if not final.exists():
                    os.replace(tmp, final)
                    return
            try:
                if final.stat().st_size == stored.size and self._hash_path(final) == stored.sha256:
                    return
            except FileNotFoundError:
                continue
            raise ArchiveConflictError(
                f"{stored.key}: a different object is already stored there; not overwritten"
            )
        raise ArchiveConflictError(f"{stored.key}: the key keeps changing under concurrent writes")

    def open(self, key: str) -> BinaryIO:
        """Return the open file; use it as a context manager."""
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArchiveNotFoundError(f"{key}: not in the archive") from None
        except OSError as exc:
            raise ArchiveUnavailableError(
                f"{self.setting_name}: cannot read {key} in the archive folder {self.root} "
                f"({exc.strerror or exc})"
            ) from exc

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        with self.open(key) as stream:
            stream.seek(start)
            return stream.read(length)

    def stat(self, key: str) -> StoredObject | None:
        try:
            info = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(info.st_mode):
            return None
        return StoredObject(key=key, size=info.st_size, sha256=None)

    def delete(self, key: str) -> None:
        # Empty directories are left behind: removing them would race a
        # concurrent put that just created them.
        try:
            self._path(key).unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        start = self.root / folder if folder else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            # Hidden names are ours (.tmp) or not archive objects at all.
            dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    yield key

    def hash_object(self, key: str) -> str:
        try:
            return self._hash_path(self._path(key))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArchiveNotFoundError(f"{key}: not in the archive") from None

    def check(self) -> None:
        probe: Path | None = None
        try:
            with self._fs_errors():
                tmp_dir = self.root / TMP_DIR_NAME
                tmp_dir.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="check-")
                probe = Path(name)
                with os.fdopen(fd, "wb") as out:
                    out.write(b"check")
                    out.flush()
                    os.fsync(out.fileno())
        finally:
            if probe is not None:
                probe.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    @staticmethod
    def _hash_path(path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
        return digest.hexdigest()


@dataclass(frozen=True)
class _TempFile:
    path: Path
    size: int
    sha256: str


def _makedirs_durable(path: Path, *, stop_at: Path) -> None:
    """Create ``path`` and its missing parents, fsync'ing each parent that gained one."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != stop_at and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(folder.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename or link in ``path`` durable (a directory's entries need their own fsync)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
