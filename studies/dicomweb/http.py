"""HTTP plumbing shared by QIDO-RS and WADO-RS: errors, Accept, multipart output.

Errors are answered as JSON (``{"error": reason}``) whatever the resource, so a
DICOMweb client's log shows the reason; ``Http404`` from a selector becomes the
same 404 an unknown UID gets, so nobody learns whether a hidden study exists.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _

from studies.archive import ArchiveError
from studies.multipart import closing_delimiter, write_part_header

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


class DicomwebError(Exception):
    """Answer the request with ``status`` and ``reason`` (for the client's log)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bad_request(reason: str) -> DicomwebError:
    return DicomwebError(400, reason)


def not_acceptable(reason: str) -> DicomwebError:
    return DicomwebError(406, reason)


def error_response(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"error": reason}, status=status, content_type=DICOM_JSON)


def answers_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Turn DicomwebError, Http404 and archive failures into JSON error responses."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DicomwebError as exc:
            return error_response(exc.status, exc.reason)
        except Http404:
            return error_response(404, _("No such resource, or you may not see it."))
        except ArchiveError:
            # The index names an object the store cannot give: an operator's problem.
            logger.exception("archive read failed")
            return error_response(503, _("The archive cannot be read at the moment."))

    return wrapper


def json_response(body: Any, *, status: int = 200) -> HttpResponse:
    """Return DICOM JSON as UTF-8 (names in Chinese stay readable in the bytes)."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HttpResponse(data, status=status, content_type=DICOM_JSON)


def stream_json_array(items: Iterable[Any]) -> HttpResponse:
    """Return a JSON array written item by item, for arrays too large to build at once."""

    def chunks() -> Iterator[bytes]:
        yield b"["
        first = True
        for item in items:
            text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            yield (text if first else "," + text).encode("utf-8")
            first = False
        yield b"]"

    return streaming(StreamingHttpResponse(chunks(), content_type=DICOM_JSON))


def streaming(response: StreamingHttpResponse) -> HttpResponse:
    """Return a streaming response typed as the views are (auth.dicomweb_view wraps
    ``Callable[..., HttpResponse]``); Django serves both kinds the same way."""
    return cast(HttpResponse, response)


# --- Accept (RFC 9110 12.5.1) ----------------------------------------------------------


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``type/subtype`` with parameters and quality."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def main(self) -> str:
        return self.media_type.partition("/")[0]

    def matches(self, concrete: str) -> bool:
        """Return whether this range admits the concrete media type ``concrete``."""
        if self.media_type == "*/*":
            return True
        main, _sep, sub = self.media_type.partition("/")
        c_main, _sep, c_sub = concrete.partition("/")
        return main == c_main and sub in ("*", c_sub)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Return the ranges of an Accept header, best first; ``*/*`` when there is none.

    A range with q=0 is left out (it says "not this"). Malformed entries are
    skipped rather than refused: clients send odd headers, and what is left
    still decides the answer.
    """
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    for entry in _split_outside_quotes(header, ","):
        pieces = _split_outside_quotes(entry, ";")
        media_type = pieces[0].strip().lower()
        if "/" not in media_type:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            name, _sep, value = piece.partition("=")
            name = name.strip().lower()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 1.0
            elif name:
                params[name] = value if name == "transfer-syntax" else value.lower()
        if q > 0:
            ranges.append(MediaRange(media_type, params, q))
    # sorted() is stable: among equal qualities the client's order stands.
    return sorted(ranges, key=lambda r: -r.q)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def accepts_json(request: HttpRequest) -> None:
    """Raise 406 unless the client takes DICOM JSON (application/json counts too)."""
    for media_range in parse_accept(request.headers.get("Accept")):
        if media_range.matches(DICOM_JSON) or media_range.matches("application/json"):
            return
    raise not_acceptable(_("This resource is answered as application/dicom+json only."))


def multipart_part_type(media_range: MediaRange) -> str | None:
    """Return the part type a range asks for (``*/*`` for a wildcard), or None.

    ``multipart/related; type="x"`` asks for parts of type x; ``*/*`` and
    ``multipart/*`` ask for anything.
    """
    if media_range.media_type in ("*/*", "multipart/*"):
        return "*/*"
    if media_range.media_type == "multipart/related":
        return media_range.params.get("type", "*/*") or "*/*"
    return None


# --- multipart/related output (PS3.18 8.7.3.3) -----------------------------------------


@dataclass
class OutPart:
    """One part to send: its Content-Type, extra headers and its bytes, as chunks.

    ``size`` is the number of bytes ``chunks`` gives, when known in advance.
    """

    content_type: str
    chunks: Iterable[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    size: int | None = None


def multipart_response(
    parts: Iterable[OutPart], *, part_type: str, status: int = 200
) -> HttpResponse:
    """Stream ``parts`` as ``multipart/related; type=part_type``; nothing is held whole.

    Given a list of parts whose sizes are all known, the response carries a
    Content-Length: the server then sends the body as it is produced, without
    chunked framing, and the client knows how much is coming.
    """
    boundary = uuid.uuid4().hex
    closing = closing_delimiter(boundary)
    length: int | None = None
    if isinstance(parts, Sequence) and all(part.size is not None for part in parts):
        headers = [write_part_header(boundary, p.content_type, p.headers) for p in parts]
        length = sum(len(h) + cast(int, p.size) + 2 for h, p in zip(headers, parts, strict=True))
        length += len(closing)

    def body() -> Iterator[bytes]:
        for part in parts:
            yield write_part_header(boundary, part.content_type, part.headers)
            yield from part.chunks
            yield b"\r\n"
        yield closing

    response = StreamingHttpResponse(
        body(),
        status=status,
        content_type=f'multipart/related; type="{part_type}"; boundary={boundary}',
    )
    if length is not None:
        response["Content-Length"] = str(length)
    return streaming(response)
