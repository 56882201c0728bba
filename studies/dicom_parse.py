"""Parse and validate one DICOM Part 10 object before it may enter the archive.

pydicom is forgiving: it reads truncated files, files without a preamble and
values of the wrong VR without complaint. This module is where the hub stops
being forgiving, and says why in words a person and a DICOMweb client can use.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pydicom
from django.utils.translation import gettext_lazy as _
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID

from studies import failure
from studies.dicom_json import dataset_json_dict

MAX_UID_LENGTH = 64  # PS3.5 9.1
PIXEL_DATA = Tag(0x7FE0, 0x0010)
FLOAT_PIXEL_DATA = Tag(0x7FE0, 0x0008)
DOUBLE_PIXEL_DATA = Tag(0x7FE0, 0x0009)
# Elements read lazily: large values stay in the file until asked for.
DEFER_SIZE = 4096

# PS3.5 Annex A / PS3.6 Table A-1. Big endian (retired) is read by pydicom but
# our frame reader serves little endian only; we refuse it rather than lie.
NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
}
ENCAPSULATED_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
}
SUPPORTED_SYNTAXES = NATIVE_SYNTAXES | ENCAPSULATED_SYNTAXES

# Character sets some modalities mislabel: GBK bytes declared as Latin-1.
LATIN1_LABELS = {"", "ISO_IR 100", "ISO_IR 6"}


class InvalidInstance(Exception):
    """The object cannot enter the archive. ``code`` is stable; ``reason`` is for people."""

    def __init__(self, code: str, reason: Any, failure_reason: int = failure.CANNOT_UNDERSTAND):
        super().__init__(str(reason))
        self.code = code
        self.reason = reason
        self.failure_reason = failure_reason


@dataclass
class ParsedInstance:
    """What the ingest pipeline needs of one object, read without its pixel data."""

    dataset: Dataset
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    rows: int | None
    columns: int | None
    number_of_frames: int
    pixel_data_offset: int | None
    json: dict[str, Any] = field(default_factory=dict)
    # After keep_only_text(): the text of the attributes kept, and nothing else.
    _kept: dict[str, str] | None = field(default=None, repr=False)

    def text(self, keyword: str) -> str:
        """Return a string attribute as text ('' when absent), decoded with its charset."""
        if self._kept is not None:
            return self._kept[keyword]  # KeyError: an attribute keep_only_text() dropped
        from_json = text_from_json(self.json, keyword)
        return from_json if from_json is not None else self.dataset_text(keyword)

    def dataset_text(self, keyword: str) -> str:
        """Return ``text(keyword)`` as pydicom converts the element (``str`` of its value)."""
        value = self.dataset.get(keyword, "")
        if value is None:
            return ""
        if isinstance(value, pydicom.multival.MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value)

    def keep_only_text(self, keywords: Iterable[str]) -> None:
        """Free the data set and the DICOM JSON, keeping the text of ``keywords``.

        For callers that hold many parsed instances at once (a large STOW-RS
        request until its index transaction): ~64 KiB each becomes a few hundred bytes.
        """
        self._kept = {keyword: self.text(keyword) for keyword in keywords}
        self.dataset = Dataset()
        self.json = {}


def text_from_json(json: dict[str, Any], keyword: str) -> str | None:
    """Return what ``str()`` of pydicom's value of ``keyword`` gives, read from the DICOM JSON.

    The JSON holds every element's value already decoded; converting the element
    again through pydicom cost ~40 µs a keyword, and ingest reads fifteen of them
    per instance. ``None`` when the JSON cannot say: a number (pydicom's ``str``
    keeps the text as written, ``"007"``), or a value left in the file.
    """
    element = json.get(_json_key(keyword))
    if element is None:
        return ""
    if "Value" not in element:
        return None if ("BulkDataURI" in element or "InlineBinary" in element) else ""
    parts = []
    for value in element["Value"]:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict) and element["vr"] == "PN":
            # str(PersonName): its component groups joined by "=" (PS3.5 6.2.1.1).
            parts.append("=".join(value.get(group, "") for group in PN_GROUPS if group in value))
        else:
            return None
    return "\\".join(parts)


PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


@functools.cache
def _json_key(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return f"{tag:08X}"


def parse_instance(source: BinaryIO) -> ParsedInstance:
    """Read and validate one Part 10 object from a seekable file.

    Raise ``InvalidInstance`` with a stable code and a reason for anything the
    archive must not accept.
    """
    source.seek(0)
    head = source.read(132)
    if len(head) == 0:
        raise InvalidInstance("empty", _("The file is empty."))
    if len(head) < 132 or head[128:132] != b"DICM":
        raise InvalidInstance(
            "not_dicom", _("Not a DICOM Part 10 file (no 'DICM' marker after the preamble).")
        )
    source.seek(0)
    try:
        dataset = pydicom.dcmread(source, defer_size=DEFER_SIZE)
    except InvalidDicomError as exc:
        raise InvalidInstance("not_dicom", _("Not a DICOM Part 10 file.")) from exc
    except Exception as exc:  # pydicom raises many types on broken input
        raise InvalidInstance(
            "unreadable", _("The DICOM data set cannot be read: it is damaged or truncated.")
        ) from exc
    if len(dataset) == 0:
        raise InvalidInstance("no_dataset", _("The file holds a header but no data set."))
    _check_not_truncated(dataset, file_size=source.seek(0, 2))

    transfer_syntax = str(dataset.file_meta.get("TransferSyntaxUID", "") or "")
    if not transfer_syntax:
        raise InvalidInstance(
            "no_transfer_syntax", _("The file meta information has no Transfer Syntax UID.")
        )
    if transfer_syntax not in SUPPORTED_SYNTAXES:
        raise InvalidInstance(
            "unsupported_transfer_syntax",
            _("Transfer syntax %(uid)s is not supported.") % {"uid": transfer_syntax[:64]},
            failure.TRANSFER_SYNTAX_NOT_SUPPORTED,
        )
    _fix_mislabelled_charset(dataset)
    uids = _required_uids(dataset)
    rows, columns, frames, pixel_offset = _check_pixel_data(dataset, transfer_syntax)
    try:
        json = dataset_json(dataset)
    except Exception as exc:
        raise InvalidInstance(
            "unreadable", _("An element of the data set cannot be decoded (wrong VR or length).")
        ) from exc
    return ParsedInstance(
        dataset=dataset,
        transfer_syntax_uid=transfer_syntax,
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        modality=str(dataset.get("Modality", "") or "OT")[:16],
        rows=rows,
        columns=columns,
        number_of_frames=frames,
        pixel_data_offset=pixel_offset,
        json=json,
    )


def _check_not_truncated(dataset: Dataset, *, file_size: int) -> None:
    """Refuse a file whose elements claim more bytes than it holds.

    Truncation cuts the file's tail, so it always shows in a top-level element
    whose declared end lies past the end of the file.
    """
    for tag in dataset.keys():  # noqa: SIM118 - iterating the Dataset loads deferred values
        raw = dataset.get_item(tag, keep_deferred=True)
        tell = getattr(raw, "value_tell", None)
        length = getattr(raw, "length", None)
        if tell is None or length is None or length == 0xFFFFFFFF:
            continue
        if tell + length > file_size:
            raise InvalidInstance(
                "truncated",
                _("The file is truncated: element %(tag)s ends after the end of the file.")
                % {"tag": f"({tag.group:04X},{tag.element:04X})"},
            )


def _required_uids(dataset: Dataset) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        try:
            value = str(dataset.get(keyword, "") or "").strip()
        except Exception as exc:
            raise InvalidInstance(
                "bad_uid", _("%(name)s cannot be read.") % {"name": keyword}
            ) from exc
        if not value:
            raise InvalidInstance(
                "missing_uid",
                _("%(name)s is missing.") % {"name": keyword},
                failure.DATASET_DOES_NOT_MATCH,
            )
        if len(value) > MAX_UID_LENGTH:
            raise InvalidInstance(
                "uid_too_long",
                _("%(name)s is longer than 64 characters.") % {"name": keyword},
                failure.DATASET_DOES_NOT_MATCH,
            )
        if not UID(value).is_valid:
            raise InvalidInstance(
                "bad_uid",
                _("%(name)s is not a valid UID (digits and dots).") % {"name": keyword},
                failure.DATASET_DOES_NOT_MATCH,
            )
        found[keyword] = value
    # A file meta SOP Instance UID that differs from the data set's is common in
    # the field; the data set's is authoritative and the bytes are kept as sent.
    return found


def _int(dataset: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = dataset.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInstance(
            "bad_value", _("%(name)s is not a number.") % {"name": keyword}
        ) from exc


def _check_pixel_data(
    dataset: Dataset, transfer_syntax: str
) -> tuple[int | None, int | None, int, int | None]:
    """Return rows, columns, frames and the pixel data's file offset (native only)."""
    frames = _int(dataset, "NumberOfFrames", 1) or 1
    rows = _int(dataset, "Rows")
    columns = _int(dataset, "Columns")
    if PIXEL_DATA not in dataset:
        if FLOAT_PIXEL_DATA in dataset or DOUBLE_PIXEL_DATA in dataset:
            raise InvalidInstance("unsupported_pixel_data", _("Float pixel data is not supported."))
        return rows, columns, frames, None
    if not rows or not columns:
        raise InvalidInstance(
            "bad_image", _("Pixel data is present but Rows or Columns is missing or zero.")
        )
    element = dataset.get_item(PIXEL_DATA, keep_deferred=True)
    if transfer_syntax not in NATIVE_SYNTAXES:
        # Encapsulated: the length is undefined; the codec finds truncation on decode.
        return rows, columns, frames, None
    samples = _int(dataset, "SamplesPerPixel", 1) or 1
    bits = _int(dataset, "BitsAllocated")
    if not bits:
        raise InvalidInstance("bad_image", _("Pixel data is present but BitsAllocated is missing."))
    if bits == 1:
        expected = math.ceil(rows * columns * samples * frames / 8)
    else:
        expected = rows * columns * samples * math.ceil(bits / 8) * frames
    actual = _element_length(element)
    if actual < expected:
        raise InvalidInstance(
            "pixel_data_short",
            _(
                "Pixel data is shorter than Rows × Columns × Samples × Bits × Frames: "
                "%(actual)d bytes, %(expected)d expected. The file is probably truncated."
            )
            % {"actual": actual, "expected": expected},
        )
    offset = getattr(element, "value_tell", None)
    if transfer_syntax == "1.2.840.10008.1.2.1.99":
        offset = None  # deflated: no byte offset into the stored object
    return rows, columns, frames, offset


def _element_length(element: Any) -> int:
    """Return the bytes actually present for an element, deferred or read."""
    value = getattr(element, "value", None)
    length = getattr(element, "length", None)
    if value is not None and isinstance(value, bytes | bytearray):
        return len(value)
    if length is not None and length != 0xFFFFFFFF:
        return int(length)
    return 0


def _fix_mislabelled_charset(dataset: Dataset) -> None:
    """Decode GBK/GB18030 names that were labelled as Latin-1 (seen in the field).

    Only the in-memory decoding changes; the stored bytes stay exactly as sent.
    """
    label = dataset.get("SpecificCharacterSet", "") or ""
    if isinstance(label, pydicom.multival.MultiValue):
        return
    if str(label).strip() not in LATIN1_LABELS:
        return
    raw = dataset.get_item("PatientName")
    raw_value = getattr(raw, "value", None)
    if not isinstance(raw_value, bytes) or raw_value.isascii():
        return
    try:
        decoded = raw_value.decode("gb18030")
    except UnicodeDecodeError:
        return
    if any("\u4e00" <= ch <= "\u9fff" for ch in decoded):
        dataset.SpecificCharacterSet = "GB18030"


BULK_PLACEHOLDER = "bulk:"


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    """Return the data set as DICOM JSON (PS3.18 F.2) without bulk data.

    Pixel data and other large binary values (those pydicom left deferred in
    the file) become ``BulkDataURI`` placeholders (``bulk:<tag>``) that the WADO
    layer turns into absolute URLs. Deferred values are never loaded. Plain
    numbers and ASCII strings are written from the bytes (``studies.dicom_json``);
    pydicom answers for the rest.
    """
    result = dataset_json_dict(dataset, fallback=_element_json)
    return dict(sorted(result.items()))


def _element_json(dataset: Dataset, tag: Any) -> dict[str, Any]:
    """Return pydicom's DICOM JSON of one element, or a placeholder for its bulk data."""
    raw = dataset.get_item(tag, keep_deferred=True)
    if _is_bulk(tag, raw):
        vr = getattr(raw, "VR", None) or _dictionary_vr(tag)
        if " or " in vr:  # implicit VR: 'OB or OW'; pixel data deeper than 8 bits is OW
            vr = "OW" if (dataset.get("BitsAllocated") or 8) > 8 else "OB"
        return {"vr": vr, "BulkDataURI": f"{BULK_PLACEHOLDER}{tag:08X}"}
    return dataset[tag].to_json_dict(
        bulk_data_element_handler=_bulk, bulk_data_threshold=DEFER_SIZE
    )


def _is_bulk(tag: Any, raw: Any) -> bool:
    if tag in (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_PIXEL_DATA):
        return True
    return getattr(raw, "value", b"") is None  # deferred: larger than DEFER_SIZE


def _dictionary_vr(tag: Any) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _bulk(elem: Any) -> str:
    return f"{BULK_PLACEHOLDER}{elem.tag:08X}"
