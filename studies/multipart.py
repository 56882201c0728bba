"""Streaming multipart/related (RFC 2387) reader and writer for DICOMweb.

The reader never holds a part in memory: each part's body is copied into a
spooled temporary file (on disk past a few MB) while its size and SHA-256 are
computed, so a gigabyte STOW-RS request costs a few buffers of memory.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any, BinaryIO, Protocol

READ_SIZE = 256 * 1024
SPOOL_MAX_MEMORY = 4 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_BOUNDARY = 200


class MultipartError(ValueError):
    """The body is not well-formed multipart; the message says how."""


class TooLarge(Exception):
    """The body is larger than the hub accepts."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: memoryview, /) -> int: ...


@dataclass
class Part:
    headers: dict[str, str]
    stream: BinaryIO  # positioned at 0
    size: int
    sha256: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def close(self) -> None:
        self.stream.close()


def parse_content_type(header: str) -> tuple[str, dict[str, str]]:
    """Return the media type and its parameters (lower-case names)."""
    message = Message()
    message["content-type"] = header
    media_type = message.get_content_type().lower()
    pairs = message.get_params() or []
    return media_type, {str(k).lower(): str(v) for k, v in pairs[1:]}


class MultipartReader:
    """Read the parts of a multipart body from a stream, one at a time.

    The unread data is ``_buffer[_pos:]``: consuming moves ``_pos`` and never
    copies, and a part's body goes to its spool as views of the buffer, so
    each byte is copied once into the buffer and once into the spool.
    """

    def __init__(self, stream: Readable, boundary: str, *, max_bytes: int | None = None):
        # RFC 2046 caps a boundary at 70 characters, but Orthanc's DICOMweb client sends
        # 73 (two UUIDs): be lenient, as Orthanc must be able to push to the hub.
        if not boundary or len(boundary) > MAX_BOUNDARY or not re.fullmatch(r"[ -~]+", boundary):
            raise MultipartError("the boundary parameter is missing or invalid")
        self._stream = stream
        self._delimiter = b"--" + boundary.encode("ascii")
        self._buffer = bytearray()
        self._pos = 0
        self._eof = False
        self._max_bytes = max_bytes
        self._read_total = 0

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._stream.read(READ_SIZE)
        if not chunk:
            self._eof = True
            return False
        self._read_total += len(chunk)
        if self._max_bytes is not None and self._read_total > self._max_bytes:
            raise TooLarge
        if self._pos:
            # Drop what was consumed; only the unread tail moves.
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += chunk
        return True

    def _unread(self) -> int:
        return len(self._buffer) - self._pos

    def parts(self) -> Iterator[Part]:
        """Yield each part; the caller must finish with one before asking for the next."""
        self._skip_preamble()
        while True:
            headers = self._read_headers()
            part = self._read_body(headers)
            ended = self._after_delimiter()
            yield part
            if ended:
                return

    def _skip_preamble(self) -> None:
        while True:
            index = self._buffer.find(self._delimiter, self._pos)
            if index >= 0 and (index == self._pos or self._buffer[index - 2 : index] == b"\r\n"):
                self._pos = index + len(self._delimiter)
                if self._after_delimiter():
                    raise MultipartError("the body holds no parts")
                return
            if self._unread() > MAX_HEADER_BYTES and index < 0:
                # Keep only a tail long enough to hold a delimiter split across reads.
                self._pos = max(self._pos, len(self._buffer) - len(self._delimiter) - 2)
            if not self._fill():
                raise MultipartError("the boundary given in Content-Type never occurs in the body")

    def _after_delimiter(self) -> bool:
        """Consume what follows a delimiter; return True after the closing one."""
        while self._unread() < 2 and self._fill():
            pass
        if self._buffer.startswith(b"--", self._pos):
            self._buffer = bytearray()
            self._pos = 0
            return True
        # Transport padding (spaces, tabs) may precede the CRLF.
        while True:
            start = self._pos
            while start < len(self._buffer) and self._buffer[start] in b" \t":
                start += 1
            if self._buffer.startswith(b"\r\n", start):
                self._pos = start + 2
                return False
            if len(self._buffer) - start >= 2 or not self._fill():
                raise MultipartError("a boundary delimiter is not followed by CRLF")

    def _read_headers(self) -> dict[str, str]:
        while True:
            if self._buffer.startswith(b"\r\n", self._pos):
                self._pos += 2
                return {}
            end = self._buffer.find(b"\r\n\r\n", self._pos)
            if end >= 0:
                raw = bytes(self._buffer[self._pos : end])
                self._pos = end + 4
                return _parse_headers(raw)
            if self._unread() > MAX_HEADER_BYTES:
                raise MultipartError("a part's headers are too long")
            if not self._fill():
                raise MultipartError("the body ends inside a part's headers")

    def _read_body(self, headers: dict[str, str]) -> Part:
        marker = b"\r\n" + self._delimiter
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)  # noqa: SIM115
        digest = hashlib.sha256()
        size = 0
        try:
            while True:
                index = self._buffer.find(marker, self._pos)
                if index >= 0:
                    size += self._copy_out(spool, digest, index)
                    self._pos = index + len(marker)
                    break
                # Everything but a tail that could hold the start of the marker is body.
                safe = len(self._buffer) - len(marker) + 1
                if safe > self._pos:
                    size += self._copy_out(spool, digest, safe)
                if not self._fill():
                    raise MultipartError("the body ends inside a part (no closing boundary)")
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return Part(headers=headers, stream=spool, size=size, sha256=digest.hexdigest())  # type: ignore[arg-type]

    def _copy_out(self, spool: Writable, digest: Any, end: int) -> int:
        """Write the unread data up to ``end`` to ``spool`` and ``digest``; consume it."""
        # A view, released before the buffer may be resized again.
        with memoryview(self._buffer) as view, view[self._pos : end] as piece:
            spool.write(piece)
            digest.update(piece)
        count = end - self._pos
        self._pos = end
        return count


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise MultipartError("a part header line has no colon")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers


def write_part_header(
    boundary: str, content_type: str, extra: dict[str, str] | None = None
) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def closing_delimiter(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("ascii")
