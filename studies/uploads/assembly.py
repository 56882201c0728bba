"""Put an upload's chunks back together and expand zips, streaming, never whole in memory.

The assembled file is a spooled temporary file: small files stay in memory,
larger ones spill to this process's temporary folder for the length of one
request (the chunks themselves live in the archive store between requests).
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

from django.utils.translation import gettext as _

from studies import failure
from studies.archive import get_store
from studies.ingest import InstanceResult, Outcome, ReceivedFile
from studies.models import UploadChunk, UploadSession
from studies.uploads import conf
from studies.uploads.errors import UploadRefused

READ_SIZE = 1024 * 1024
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# Bookkeeping files that operating systems and CD exports put into zips. DICOMDIR
# indexes a CD; the archive indexes the instances themselves.
SKIPPED_NAMES = frozenset({"thumbs.db", "desktop.ini", "dicomdir"})
# Bit 0: the entry is encrypted; bit 11: its name is UTF-8 (APPNOTE 4.4.4).
ZIP_ENCRYPTED = 0x1
ZIP_UTF8_NAME = 0x800


@dataclass
class Assembled:
    stream: BinaryIO
    size: int
    sha256: str

    def close(self) -> None:
        self.stream.close()


def spool() -> BinaryIO:
    return cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=conf.spool_memory_bytes()))


def assemble(session: UploadSession, chunks: Sequence[UploadChunk]) -> Assembled:
    """Return the file the chunks make, verified against the declared size and SHA-256.

    Raise ``UploadRefused`` when a chunk has the wrong length, the total differs
    from the declared size, or the whole file's SHA-256 differs from the declared one.
    """
    by_index = {chunk.index: chunk for chunk in chunks}
    received = sum(chunk.size for chunk in chunks)
    wrong_size = UploadRefused(
        "size_mismatch",
        _("Received %(received)s bytes, but the file was announced with %(size)s bytes.")
        % {"received": received, "size": session.size},
        received=received,
        size=session.size,
    )
    if received != session.size:
        raise wrong_size
    for index in range(session.chunk_count):
        if by_index[index].size != session.expected_chunk_size(index):
            raise wrong_size
    store = get_store()
    out = spool()
    whole = hashlib.sha256()
    try:
        for index in range(session.chunk_count):
            piece_hash = hashlib.sha256()
            for piece in store.iter_chunks(session.chunk_key(index), READ_SIZE):
                out.write(piece)
                whole.update(piece)
                piece_hash.update(piece)
            if piece_hash.hexdigest() != by_index[index].sha256:
                raise UploadRefused(
                    "chunk_damaged",
                    _("A stored part of the file was damaged; upload the file again."),
                )
        if out.tell() != session.size:
            raise wrong_size
        digest = whole.hexdigest()
        if session.sha256 and digest != session.sha256:
            raise UploadRefused(
                "sha256_mismatch",
                _(
                    "The file's SHA-256 differs from the one announced: it changed or was "
                    "damaged on the way. Upload it again."
                ),
            )
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return Assembled(stream=out, size=session.size, sha256=digest)


def looks_like_zip(stream: BinaryIO) -> bool:
    stream.seek(0)
    head = stream.read(4)
    stream.seek(0)
    return head in ZIP_MAGIC


def member_name(info: zipfile.ZipInfo) -> str:
    """Return the entry's name as the person who zipped it wrote it.

    Zips made on Chinese Windows store GBK names without the UTF-8 flag, which
    Python reads as code page 437; undo that so results show 胸片/…, not mojibake.
    """
    if info.flag_bits & ZIP_UTF8_NAME:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def is_skipped(name: str) -> bool:
    parts = [part for part in name.replace("\\", "/").split("/") if part]
    if not parts or "__MACOSX" in parts:
        return True
    base = parts[-1]
    return base.startswith(".") or base.lower() in SKIPPED_NAMES


def open_zip(stream: BinaryIO) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """Open a zip and return it with the entries to ingest, refusing zip bombs up front.

    The caps are on the entry count and on the sum of the sizes the central
    directory declares; Python's zip reader never inflates an entry beyond its
    declared size (a lying entry fails its CRC instead), so the cap holds.
    """
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise UploadRefused(
            "zip_unreadable", _("The zip file cannot be read: it is damaged or incomplete.")
        ) from exc
    infos = archive.infolist()
    if len(infos) > conf.zip_max_members():
        archive.close()
        raise UploadRefused(
            "zip_too_many_members",
            _("The zip holds %(count)s entries; at most %(limit)s are accepted.")
            % {"count": len(infos), "limit": conf.zip_max_members()},
        )
    members = [info for info in infos if not info.is_dir() and not is_skipped(member_name(info))]
    declared = sum(info.file_size for info in members)
    if declared > conf.zip_max_uncompressed():
        archive.close()
        raise UploadRefused(
            "zip_too_large",
            _(
                "The zip expands to %(size)s bytes; at most %(limit)s are accepted. "
                "Split it into smaller zips."
            )
            % {"size": declared, "limit": conf.zip_max_uncompressed()},
        )
    if not members:
        archive.close()
        raise UploadRefused("zip_empty", _("The zip holds no files."))
    return archive, members


def iter_members(
    archive: zipfile.ZipFile, members: Sequence[zipfile.ZipInfo], refused: list[InstanceResult]
) -> Iterator[ReceivedFile]:
    """Yield each entry as a received file; entries that cannot be read go to ``refused``.

    Each entry is spooled while it is being ingested and closed before the next.
    """
    limit = conf.zip_max_uncompressed()
    total = 0
    for info in members:
        name = member_name(info)
        if info.flag_bits & ZIP_ENCRYPTED:
            refused.append(_member_refused(name, "zip_encrypted", _("The entry is encrypted.")))
            continue
        out = spool()
        try:
            try:
                size, digest = _copy(archive, info, out, budget=limit - total)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
                refused.append(
                    _member_refused(
                        name, "zip_entry_unreadable", _("The entry cannot be read from the zip.")
                    )
                )
                continue
            total += size
            out.seek(0)
            yield ReceivedFile(stream=out, size=size, sha256=digest, name=name)
        finally:
            out.close()


def _copy(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: BinaryIO, *, budget: int
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with archive.open(info) as source:
        while piece := source.read(READ_SIZE):
            size += len(piece)
            if size > budget:
                raise UploadRefused(
                    "zip_too_large",
                    _("The zip expands to more than %(limit)s bytes; split it into smaller zips.")
                    % {"limit": conf.zip_max_uncompressed()},
                )
            out.write(piece)
            digest.update(piece)
    return size, digest.hexdigest()


def _member_refused(name: str, code: str, reason: object) -> InstanceResult:
    return InstanceResult(
        outcome=Outcome.REFUSED,
        code=code,
        reason=str(reason),
        failure_reason=failure.CANNOT_UNDERSTAND,
        name=name,
    )
