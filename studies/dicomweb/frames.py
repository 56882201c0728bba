"""WADO-RS frames (PS3.18 10.4.1.1.3) and the pixel access rendering shares.

Native little-endian objects are read by byte range: frame n is
``frame_size`` bytes at ``pixel_data_offset + (n-1) * frame_size``, so a frame of
a 2 GB multi-frame object costs one small read. Compressed objects are either
sent as stored (the client asked for their media type, or for
``transfer-syntax=*``) or decoded here with pydicom and the pylibjpeg codecs
and sent as uncompressed little-endian bytes, the default media type.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pydicom
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder, pack_bits, pixel_array

from regional_cloud.audit import audit
from regional_cloud.permissions import permission_granted_on
from studies.archive import get_store
from studies.dicom_parse import NATIVE_SYNTAXES
from studies.dicomweb.auth import dicomweb_view
from studies.dicomweb.http import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    DicomwebError,
    OutPart,
    answers_errors,
    bad_request,
    multipart_part_type,
    multipart_response,
    not_acceptable,
    parse_accept,
)
from studies.dicomweb.read_audit import audit_image_read
from studies.models import Instance, Study
from studies.selectors import VIEW_STUDY

OCTET_STREAM = "application/octet-stream"
# PS3.18 Table 8.7.3-2: the media type of a compressed frame, by transfer syntax.
MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
# Older names clients still send for the same media types.
MEDIA_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}
SPOOL_MEMORY = 8 * 1024 * 1024
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_FRAME_LIST_RE = re.compile(r"\d{1,9}(,\d{1,9})*")


def _meta_value(metadata: dict[str, Any], tag: str, default: Any = None) -> Any:
    values = (metadata.get(tag) or {}).get("Value") or []
    return values[0] if values else default


@dataclass(frozen=True)
class PixelInfo:
    """The Image Pixel module (PS3.3 C.7.6.3) of an instance, from its indexed metadata."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    planar_configuration: int
    frames: int
    transfer_syntax: str

    @property
    def native(self) -> bool:
        return self.transfer_syntax in NATIVE_SYNTAXES

    @property
    def frame_size(self) -> int:
        """Bytes per frame of native pixel data (bit-packed frames are not byte aligned)."""
        return self.rows * self.columns * self.samples * math.ceil(self.bits_allocated / 8)


def pixel_info(instance: Instance) -> PixelInfo:
    """Return the instance's pixel description, or a 404 when it holds no image."""
    meta = instance.metadata
    if "7FE00010" not in meta or not instance.rows or not instance.columns:
        raise DicomwebError(404, _("This instance holds no pixel data."))
    bits_allocated = int(_meta_value(meta, "00280100", 8))
    return PixelInfo(
        rows=instance.rows,
        columns=instance.columns,
        samples=int(_meta_value(meta, "00280002", 1)),
        bits_allocated=bits_allocated,
        bits_stored=int(_meta_value(meta, "00280101", bits_allocated)),
        pixel_representation=int(_meta_value(meta, "00280103", 0)),
        photometric=str(_meta_value(meta, "00280004", "MONOCHROME2")),
        planar_configuration=int(_meta_value(meta, "00280006", 0)),
        frames=max(instance.number_of_frames, 1),
        transfer_syntax=instance.transfer_syntax_uid,
    )


def parse_frame_list(raw: str, frames: int) -> list[int]:
    """Return the 1-based frame numbers of ``1,2,3``; 400 if malformed, 404 past the end."""
    if not _FRAME_LIST_RE.fullmatch(raw):
        raise bad_request(_("Frame numbers are a comma-separated list of whole numbers."))
    numbers = [int(n) for n in raw.split(",")]
    if any(n < 1 for n in numbers):
        raise bad_request(_("Frame numbers start at 1."))
    if any(n > frames for n in numbers):
        raise DicomwebError(404, _("The instance has %(count)d frame(s).") % {"count": frames})
    return numbers


def range_readable(instance: Instance, info: PixelInfo) -> bool:
    """Return whether frames can be read by byte range (native, byte-aligned, not deflated)."""
    return info.native and instance.pixel_data_offset is not None and info.bits_allocated >= 8


def native_frame(instance: Instance, info: PixelInfo, number: int) -> bytes:
    """Return frame ``number`` (1-based) of a range-readable object, as stored."""
    offset = int(instance.pixel_data_offset or 0) + (number - 1) * info.frame_size
    data = get_store().read_range(instance.archive_key, offset, info.frame_size)
    if len(data) != info.frame_size:
        raise DicomwebError(500, _("The stored object is shorter than its pixel data claims."))
    return data


@contextlib.contextmanager
def local_copy(instance: Instance) -> Iterator[BinaryIO]:
    """Yield a seekable stream of the stored object (a spooled copy when the store streams)."""
    with get_store().open(instance.archive_key) as stream:
        seekable = getattr(stream, "seekable", None)
        if seekable is not None and seekable():
            yield stream
            return
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as copy:
            shutil.copyfileobj(stream, copy, 1024 * 1024)
            copy.seek(0)
            yield copy  # type: ignore[misc]


def stored_frame(source: BinaryIO, info: PixelInfo, number: int) -> bytes:
    """Return compressed frame ``number`` as stored, reading only the fragments it needs."""
    source.seek(0)
    pydicom.dcmread(source, stop_before_pixels=True)
    if source.read(4) != PIXEL_DATA_TAG:
        raise DicomwebError(500, _("The stored object's pixel data cannot be located."))
    source.seek(8, 1)  # VR, reserved bytes and the undefined length (PS3.5 A.4)
    return get_frame(source, number - 1, number_of_frames=info.frames)


def decoded_array(source: BinaryIO, number: int) -> np.ndarray:
    """Decode frame ``number`` of any supported object (YBR colour comes out as RGB)."""
    source.seek(0)
    try:
        return pixel_array(source, index=number - 1)
    except Exception as exc:
        raise not_acceptable(
            _("This hub cannot decode the frame; ask for it as stored (transfer-syntax=*).")
        ) from exc


def native_array(data: bytes, info: PixelInfo) -> np.ndarray:
    """Return one native frame's bytes as an array (signed values sign-extended)."""
    decoder = get_decoder(EXPLICIT_VR_LITTLE_ENDIAN)
    options: dict[str, Any] = {
        "rows": info.rows,
        "columns": info.columns,
        "samples_per_pixel": info.samples,
        "bits_allocated": info.bits_allocated,
        "bits_stored": info.bits_stored,
        "pixel_representation": info.pixel_representation,
        "photometric_interpretation": info.photometric,
        "planar_configuration": info.planar_configuration,
        "number_of_frames": 1,
        "pixel_keyword": "PixelData",
    }
    array, _meta = decoder.as_array(data, **options)
    return array


def frame_array(instance: Instance, info: PixelInfo, number: int) -> np.ndarray:
    """Return frame ``number`` as pixel values, by range read when the object allows."""
    if range_readable(instance, info):
        return native_array(native_frame(instance, info, number), info)
    with local_copy(instance) as source:
        return decoded_array(source, number)


def array_bytes(array: np.ndarray, info: PixelInfo) -> bytes:
    """Return decoded pixels as uncompressed little-endian frame bytes."""
    if info.bits_allocated == 1:
        return pack_bits(array)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


# --- the frames resource ---------------------------------------------------------------

STORED, DECODED = "stored", "decoded"


def negotiate_frames(request: HttpRequest, transfer_syntax: str) -> str:
    """Return STORED or DECODED for the client's Accept, or raise 406.

    The default (no Accept, wildcards, octet-stream) is uncompressed Explicit
    VR Little Endian; ``transfer-syntax=*`` or the stored media type gets the
    frames as stored, without decoding.
    """
    stored_media = MEDIA_TYPES.get(transfer_syntax, OCTET_STREAM)
    for media_range in parse_accept(request.headers.get("Accept")):
        part_type = multipart_part_type(media_range)
        if part_type is None:
            continue
        part_type = MEDIA_ALIASES.get(part_type, part_type)
        syntax = media_range.params.get("transfer-syntax")
        if part_type in ("*/*", OCTET_STREAM):
            if syntax == "*" or syntax == transfer_syntax:
                return STORED
            if syntax in (None, EXPLICIT_VR_LITTLE_ENDIAN):
                return DECODED
            continue
        compressed = stored_media != OCTET_STREAM
        if (
            compressed
            and part_type in (stored_media, "image/*")
            and syntax in (None, "*", transfer_syntax)
        ):
            return STORED
    raise not_acceptable(
        _(
            "The frames are available uncompressed (application/octet-stream) "
            "or as stored (%(media)s); this hub does not transcode."
        )
        % {"media": stored_media}
    )


def frame_parts(instance: Instance, info: PixelInfo, numbers: list[int], mode: str) -> Any:
    """Return (part type, parts): the first part is made now, so a failure is still a status."""
    compressed = not info.native and mode == STORED
    if compressed:
        media = MEDIA_TYPES[info.transfer_syntax]
        content_type = f"{media}; transfer-syntax={info.transfer_syntax}"
    else:
        media = OCTET_STREAM
        content_type = f"{OCTET_STREAM}; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"

    def one(number: int, source: BinaryIO | None) -> bytes:
        if source is None:
            return native_frame(instance, info, number)
        if compressed:
            return stored_frame(source, info, number)
        return array_bytes(decoded_array(source, number), info)

    def parts(first: bytes, stack: contextlib.ExitStack, source: BinaryIO | None) -> Any:
        with stack:
            yield OutPart(content_type, [first])
            for number in numbers[1:]:
                yield OutPart(content_type, [one(number, source)])

    stack = contextlib.ExitStack()
    try:
        source = (
            None if range_readable(instance, info) else stack.enter_context(local_copy(instance))
        )
        first = one(numbers[0], source)
    except BaseException:
        stack.close()
        raise
    return media, parts(first, stack, source)


def access_frame_instance(user: Any, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    """Return the instance at this path if ``user`` may see its study, else 404, in one query.

    What ``access_instance_by_uid`` answers, in one statement instead of five (the
    instance, series and study, the permission's id and the user's groups): a
    viewer asks for every frame of a stack, so each round trip counts.
    """
    instance = (
        Instance.objects.select_related("series", "study", "study__patient")
        .filter(
            permission_granted_on("study_id", Study, user, VIEW_STUDY),
            sop_instance_uid=sop_uid,
            series__series_instance_uid=series_uid,
            study__study_instance_uid=study_uid,
        )
        .first()
    )
    if instance is None:
        raise Http404("no such instance")
    return instance


@dicomweb_view
@require_safe
@answers_errors
def instance_frames(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponse:
    """GET .../instances/{sop}/frames/{1,2,3}: multipart/related, one part per frame."""
    instance = access_frame_instance(request.user, study_uid, series_uid, sop_uid)
    info = pixel_info(instance)
    numbers = parse_frame_list(frame_list, info.frames)
    mode = negotiate_frames(request, info.transfer_syntax)
    media, parts = frame_parts(instance, info, numbers, mode)
    audit_image_read(request, instance, "study.frames", frames=len(numbers))
    return multipart_response(parts, part_type=media)


def audit_read(request: HttpRequest, instance: Instance, action: str, **detail: Any) -> None:
    """Write the one audit row of a retrieval that touched this instance."""
    study = instance.study
    audit(
        action=action,
        actor=request.user,
        object_type="study",
        object_id=study.uuid,
        patient_ref=study.patient.uuid,
        study_uid=study.study_instance_uid,
        request=request,
        detail={"sop_instance_uid": instance.sop_instance_uid, **detail},
    )
