"""DICOM JSON (PS3.18 F.2) of a data set, written straight from the bytes where that is safe.

pydicom's ``DataElement.to_json_dict`` needs every element converted to a
``DataElement`` with typed values (``DSfloat``, ``IS``, ``PersonName``,
``UID``) only to turn them back into plain JSON values: ~1.2 ms a CT slice,
the largest share of ingest's CPU per instance (benchmarks/README.md,
"Archive"). Most elements of an image header are little-endian numbers and
ASCII strings whose JSON needs none of that. This module writes those from the
raw bytes — text in the data set's character set decoded as pydicom decodes it
when no ISO 2022 escape sequence is present (one codec for the whole value:
GB18030, UTF-8, Latin-1) — and leaves every other element to the caller's
``fallback`` (pydicom): text with escape sequences (ISO 2022 IR 58, IR 87),
text that does not decode, sequences,
binary and deferred values, big endian, private and unknown tags, tags whose
VR pydicom corrects (``US or SS``, LUT descriptors), and anything unusual (an
empty value inside a multi-value, a number that does not parse — so what
pydicom refuses is still refused). The answer is the one pydicom gives;
``tests/test_dicom_json.py`` compares the two on every file bundled with pydicom.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

# pydicom's convert_string / convert_UI: ASCII, trailing spaces and NULs off, split on "\".
_STRING_VRS = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})
# convert_text: each value of a multi-value loses its own trailing padding.
_TEXT_VRS = frozenset({"SH", "LO", "UC"})
# convert_single_string: one value, backslashes included.
_SINGLE_TEXT_VRS = frozenset({"ST", "LT", "UT"})
# Text the Specific Character Set applies to (PS3.5 6.1.2.3).
_CHARSET_VRS = _TEXT_VRS | _SINGLE_TEXT_VRS | {"PN"}
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
_NUMBER_SIZES = {vr: struct.calcsize("<" + code) for vr, code in _NUMBER_FORMATS.items()}
_ESC = 0x1B  # starts an ISO 2022 escape sequence: pydicom switches character sets on it

ElementJson = dict[str, Any]


class _Fallback(Exception):
    """This element is left to the caller's fallback."""


def dataset_json_dict(
    dataset: Dataset, *, fallback: Callable[[Dataset, Any], ElementJson]
) -> dict[str, ElementJson]:
    """Return ``{"ggggeeee": element JSON}`` for the elements of ``dataset``, in its order.

    ``fallback(dataset, tag)`` answers for each element this module does not write.
    Raw elements are read without being converted (pydicom keeps them raw).
    """
    result: dict[str, ElementJson] = {}
    elements = dataset._dict
    codec = _text_codec(dataset)
    for tag in dataset.keys():  # noqa: SIM118 - the Dataset's own order, as pydicom's
        raw = elements[tag]
        try:
            if isinstance(raw, RawDataElement):
                result[f"{tag:08X}"] = _element_json(raw, codec)
            else:
                result[f"{tag:08X}"] = _converted_json(raw)
        except _Fallback:
            result[f"{tag:08X}"] = fallback(dataset, tag)
    return result


def _text_codec(dataset: Dataset) -> str:
    """Return the Python codec pydicom decodes this data set's text with, when no
    ISO 2022 escape sequence switches it (``Dataset.__getitem__``, ``decode_bytes``)."""
    charset = dataset.original_character_set or dataset._character_set
    if isinstance(charset, str):
        return charset or default_encoding
    return charset[0] if charset else default_encoding


def _element_json(raw: RawDataElement, codec: str) -> ElementJson:
    value = raw.value
    if value is None or not raw.is_little_endian or raw.tag.is_private:
        raise _Fallback
    vr = _checked_vr(raw)
    if vr in _NUMBER_FORMATS:
        return {"vr": vr, **_numbers(value, vr)}
    if _ESC in value:
        raise _Fallback  # ISO 2022: pydicom switches character sets at each escape
    if vr == "PN":
        value = value.rstrip(b"\x00 ")  # convert_PN strips the bytes, then decodes
    if value.isascii():
        text = value.decode("ascii")  # the same in every character set DICOM names
    elif vr in _CHARSET_VRS:
        try:
            text = value.decode(codec)
        except (LookupError, UnicodeError):
            raise _Fallback from None  # pydicom warns and decodes with replacements
    else:
        raise _Fallback
    if vr in _STRING_VRS:
        return {"vr": vr, **_strings(text.rstrip(" \x00").split("\\"))}
    if vr == "DS":
        return {"vr": vr, **_numbers_in_text(text.strip().rstrip(" \x00"), float)}
    if vr == "IS":
        return {"vr": vr, **_numbers_in_text(text.rstrip(" \x00"), int)}
    if vr in _TEXT_VRS:
        return {"vr": vr, **_strings([v.rstrip("\x00 ") for v in text.split("\\")])}
    if vr in _SINGLE_TEXT_VRS:
        return {"vr": vr, **_strings([text.rstrip("\x00 ")])}
    if vr == "PN":
        return {"vr": vr, **_person_names(text)}
    raise _Fallback


def _converted_json(element: DataElement) -> ElementJson:
    """Return the JSON of an element pydicom already converted, if its value is one plain value.

    Ingest's checks read a few elements (the UIDs, Rows, Columns, Bits Allocated)
    before the JSON is made; pydicom converted those, their bytes are gone.
    """
    vr, value = element.VR, element.value
    if vr in _STRING_VRS and isinstance(value, str) and "\\" not in value:
        return {"vr": vr, "Value": [value]} if value else {"vr": vr}
    if vr in ("US", "UL") and type(value) is int:
        return {"vr": vr, "Value": [value]}
    raise _Fallback


def _checked_vr(raw: RawDataElement) -> str:
    """Return the element's VR, unless pydicom would look it up or correct it."""
    try:
        known = str(dictionary_VR(raw.tag))
    except KeyError:
        raise _Fallback from None
    if " or " in known:
        raise _Fallback  # US or SS, OB or OW: pydicom decides from the data set
    vr = raw.VR or known  # implicit VR: the dictionary's, as pydicom does
    if vr != known and raw.VR == "UN":
        raise _Fallback  # pydicom replaces UN with the known VR
    return vr


def _strings(values: list[str]) -> ElementJson:
    if len(values) == 1:
        return {"Value": values} if values[0] else {}
    if "" in values:
        raise _Fallback
    return {"Value": values}


def _numbers_in_text(text: str, number: Callable[[str], Any]) -> ElementJson:
    if not text:
        return {}
    values = text.split("\\")
    if "" in values:
        raise _Fallback
    try:
        return {"Value": [number(v) for v in values]}
    except ValueError:
        raise _Fallback from None  # pydicom's own conversion says what it makes of it


def _numbers(value: bytes, vr: str) -> ElementJson:
    if not value:
        return {}
    size = _NUMBER_SIZES[vr]
    if len(value) % size:
        raise _Fallback
    return {"Value": list(struct.unpack(f"<{len(value) // size}{_NUMBER_FORMATS[vr]}", value))}


def _person_names(text: str) -> ElementJson:
    if not text:
        raise _Fallback  # pydicom's answer for an empty name has its own shape
    names = []
    for name in text.split("\\"):
        groups = name.split("=")
        while groups and not groups[-1]:
            groups.pop()
        if not groups:
            raise _Fallback
        names.append(dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False)))
    return {"Value": names}
