"""QIDO-RS query parameters turned into database conditions.

Matching follows PS3.4 C.2.2.2 as profiled by PS3.18 8.3.4:

- single value matching, case-sensitive, except person names (PN), which
  match case-insensitively against any component group (alphabetic,
  ideographic, phonetic: ``Wang^XiaoDong=王^小東`` matches ``wang*`` and ``王*``);
- wildcards ``*`` and ``?`` on string attributes (SQL LIKE, escaped);
- universal matching: an empty value or ``*`` matches everything;
- UID list matching: ``uid1,uid2`` or ``uid1\\uid2``;
- range matching on dates and times: ``20240101-20240131``, ``-20240131``,
  ``20240101-``; a range never matches an empty value;
- ModalitiesInStudy matches when any series of the study matches any value.

An attribute the hub does not know, or knows but cannot match on at this
level, is a bad query (400) rather than silently ignored: a client that thinks
it filtered and did not would show the wrong patient's studies.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, F, Lookup, OuterRef, Q
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IRegex,
    LessThanOrEqual,
)
from django.utils.translation import gettext as _
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from studies.dicomweb.http import bad_request
from studies.models import Series

STUDY, SERIES, INSTANCE = "study", "series", "instance"
LEVELS = (STUDY, SERIES, INSTANCE)
# Query parameters that are not attributes (PS3.18 8.3.4.1).
RESERVED = {"limit", "offset", "includefield", "fuzzymatching"}
# Defined by later editions; accepted and not acted on, like fuzzymatching.
IGNORED = {"emptyvaluematching", "multiplevaluematching"}


class Kind(enum.Enum):
    UID = "uid"  # UI: list matching
    DATE = "date"  # DA: single value or range
    TIME = "time"  # TM: prefix or range
    TEXT = "text"  # LO, SH: wildcards, case-sensitive
    CODE = "code"  # CS: wildcards, case-sensitive, lists allowed
    PN = "pn"  # person name: wildcards, case-insensitive, any component group
    INT = "int"  # IS, US
    MODALITIES = "modalities"  # ModalitiesInStudy: any series matches


@dataclass(frozen=True)
class Key:
    """A matching key: the attribute, its level, the column it matches and how."""

    tag: str
    level: str
    column: str  # ORM path from the model of ``level``
    kind: Kind


KEYS: dict[str, Key] = {
    key.tag: key
    for key in [
        Key("0020000D", STUDY, "study_instance_uid", Kind.UID),
        Key("00080020", STUDY, "study_date", Kind.DATE),
        Key("00080030", STUDY, "study_time", Kind.TIME),
        Key("00080050", STUDY, "accession_number", Kind.TEXT),
        Key("00080061", STUDY, "", Kind.MODALITIES),
        Key("00080090", STUDY, "referring_physician_name", Kind.PN),
        Key("00081030", STUDY, "study_description", Kind.TEXT),
        Key("00100010", STUDY, "patient__patient_name", Kind.PN),
        Key("00100020", STUDY, "patient__patient_id", Kind.TEXT),
        Key("00100030", STUDY, "patient__patient_birth_date", Kind.DATE),
        Key("00100040", STUDY, "patient__patient_sex", Kind.CODE),
        Key("00200010", STUDY, "study_id", Kind.TEXT),
        Key("0020000E", SERIES, "series_instance_uid", Kind.UID),
        Key("00080060", SERIES, "modality", Kind.CODE),
        Key("00200011", SERIES, "series_number", Kind.INT),
        Key("0008103E", SERIES, "series_description", Kind.TEXT),
        Key("00180015", SERIES, "body_part_examined", Kind.CODE),
        Key("00080018", INSTANCE, "sop_instance_uid", Kind.UID),
        Key("00080016", INSTANCE, "sop_class_uid", Kind.UID),
        Key("00200013", INSTANCE, "instance_number", Kind.INT),
        Key("00280010", INSTANCE, "rows", Kind.INT),
        Key("00280011", INSTANCE, "columns", Kind.INT),
        Key("00280008", INSTANCE, "number_of_frames", Kind.INT),
    ]
}

# How a query at one level reaches the columns of its own and higher levels.
PREFIX = {
    STUDY: {STUDY: ""},
    SERIES: {STUDY: "study__", SERIES: ""},
    INSTANCE: {STUDY: "study__", SERIES: "series__", INSTANCE: ""},
}
# The study's primary key as seen from each level, for ModalitiesInStudy.
STUDY_PK = {STUDY: "pk", SERIES: "study_id", INSTANCE: "study_id"}

_TAG_RE = re.compile(r"[0-9A-Fa-f]{8}")
_UID_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_DATE_RE = re.compile(r"\d{8}")
_TIME_RE = re.compile(r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?")


def attribute_tag(name: str) -> str | None:
    """Return the 8-hex-digit tag for a keyword or tag (``PatientID``, ``00100020``)."""
    if _TAG_RE.fullmatch(name):
        return name.upper()
    tag = tag_for_keyword(name)
    if tag is None:
        return None
    return f"{tag:08X}"


def attribute_name(tag: str) -> str:
    return keyword_for_tag(int(tag, 16)) or tag


class Like(Lookup):
    """``lhs LIKE pattern`` with backslash escapes (the pattern is built by ``like_pattern``)."""

    lookup_name = "dicom_like"
    insensitive = False

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        if self.insensitive:
            if connection.vendor == "postgresql":
                return f"{lhs} ILIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]
            lhs, rhs = f"UPPER({lhs})", f"UPPER({rhs})"
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


class ILike(Like):
    lookup_name = "dicom_ilike"
    insensitive = True


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def like_pattern(value: str) -> str:
    """Translate DICOM wildcards to a LIKE pattern, escaping LIKE's own specials."""
    out = []
    for char in value:
        if char in "\\%_":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def person_name_regex(value: str) -> str:
    """Return a regex matching ``value`` against any component group of a stored name.

    Names are stored as ``Alphabetic=Ideographic=Phonetic``; a value without
    ``=`` must match one whole group, a value with ``=`` the whole name. Only
    syntax that PostgreSQL and Python agree on is used (the demo runs SQLite).
    """
    whole = "=" in value
    any_run, any_one = (".*", ".") if whole else ("[^=]*", "[^=]")
    body = "".join(any_run if c == "*" else any_one if c == "?" else re.escape(c) for c in value)
    return f"^{body}$" if whole else f"(^|=){body}(=|$)"


@dataclass
class Query:
    """What a QIDO-RS request asks for, parsed and checked."""

    condition: Q
    includefields: set[str]
    include_all: bool
    limit: int
    offset: int
    capped: bool  # the server, not the client, limited the page size
    fuzzy: bool
    keys: list[str]


def parse_query(params: Any, *, level: str, max_limit: int) -> Query:
    """Parse a QueryDict for a search at ``level``; raise a 400 error for a bad query."""
    condition = Q()
    includefields: set[str] = set()
    include_all = False
    keys: list[str] = []
    for name in params:
        values: list[str] = params.getlist(name)
        if name in RESERVED or name in IGNORED:
            continue
        tag = attribute_tag(name)
        if tag is None:
            raise bad_request(_("Unknown attribute %(name)s in the query.") % {"name": name})
        key = KEYS.get(tag)
        if key is None or LEVELS.index(key.level) > LEVELS.index(level):
            raise bad_request(
                _("Matching on %(name)s is not supported in a %(level)s query.")
                % {"name": attribute_name(tag), "level": level}
            )
        keys.append(attribute_name(tag))
        condition &= match(key, values, level=level)
    for raw in params.getlist("includefield"):
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            if item.lower() == "all":
                include_all = True
                continue
            tag = attribute_tag(item)
            if tag is None:
                raise bad_request(_("Unknown attribute %(name)s in includefield.") % {"name": item})
            includefields.add(tag)
    limit, capped = _limit(params.get("limit"), max_limit)
    offset = _non_negative(params.get("offset"), "offset")
    fuzzy = (params.get("fuzzymatching") or "").lower() == "true"
    return Query(condition, includefields, include_all, limit, offset, capped, fuzzy, keys)


def _limit(raw: str | None, max_limit: int) -> tuple[int, bool]:
    if raw is None or raw == "":
        return max_limit, True
    if not raw.isdigit() or int(raw) < 1:
        raise bad_request(_("limit must be a positive whole number."))
    if int(raw) > max_limit:
        return max_limit, True
    return int(raw), False


def _non_negative(raw: str | None, name: str) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit():
        raise bad_request(_("%(name)s must be a whole number, 0 or more.") % {"name": name})
    return int(raw)


def match(key: Key, values: list[str], *, level: str) -> Q:
    """Return the condition for one key; repeated values match if any matches."""
    column = PREFIX[level][key.level] + key.column
    values = [v.strip() for v in values]
    if key.kind in (Kind.UID, Kind.CODE, Kind.MODALITIES):
        values = [part.strip() for v in values for part in re.split(r"[,\\]", v)]
    if any(v in ("", "*") for v in values):
        return Q()  # universal matching
    if key.kind is Kind.MODALITIES:
        return _modalities(values, study_pk=STUDY_PK[level])
    if key.kind is Kind.UID:
        for uid in values:
            if len(uid) > 64 or not _UID_RE.fullmatch(uid):
                raise bad_request(
                    _("%(name)s: %(value)s is not a UID.")
                    % {"name": attribute_name(key.tag), "value": uid[:70]}
                )
        return Q(In(F(column), values))
    condition = Q()
    for value in values:
        condition |= _single(key, column, value)
    return condition


def _single(key: Key, column: str, value: str) -> Q:
    name = attribute_name(key.tag)
    if key.kind is Kind.DATE:
        return _range(column, value, name, _date_bound)
    if key.kind is Kind.TIME:
        return _range(column, value, name, _time_bound)
    if key.kind is Kind.INT:
        if not re.fullmatch(r"[+-]?\d{1,10}", value):
            raise bad_request(_("%(name)s must be a whole number.") % {"name": name})
        return Q(Exact(F(column), int(value)))
    if key.kind is Kind.PN:
        return Q(IRegex(F(column), person_name_regex(value)))
    if has_wildcard(value):
        return Q(Like(F(column), like_pattern(value)))
    return Q(Exact(F(column), value))


def _modalities(values: Iterable[str], *, study_pk: str) -> Q:
    condition = Q()
    for value in values:
        if has_wildcard(value):
            condition |= Q(Like(F("modality"), like_pattern(value)))
        else:
            condition |= Q(modality=value)
    return Q(Exists(Series.objects.filter(condition, study_id=OuterRef(study_pk))))


def _range(column: str, value: str, name: str, bound: Any) -> Q:
    """Match a DA or TM value: one value, or a range with either end open."""
    if "-" not in value:
        low = bound(value, name, upper=False)
        if bound is _time_bound:
            # A partial time names a span: "14" is 14:00:00 to 14:59:59.999999.
            return Q(GreaterThanOrEqual(F(column), low)) & Q(
                LessThanOrEqual(F(column), bound(value, name, upper=True))
            )
        return Q(Exact(F(column), low))
    start, _sep, end = value.partition("-")
    if not start and not end:
        raise bad_request(_("%(name)s: a range needs at least one end.") % {"name": name})
    condition = Q(GreaterThan(F(column), ""))  # a range never matches an empty value
    if start:
        condition &= Q(GreaterThanOrEqual(F(column), bound(start, name, upper=False)))
    if end:
        condition &= Q(LessThanOrEqual(F(column), bound(end, name, upper=True)))
    return condition


def _date_bound(value: str, name: str, *, upper: bool) -> str:
    if not _DATE_RE.fullmatch(value):
        raise bad_request(
            _("%(name)s: %(value)s is not a date (YYYYMMDD) or a range of dates.")
            % {"name": name, "value": value[:20]}
        )
    try:
        datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise bad_request(
            _("%(name)s: %(value)s is not a calendar date.") % {"name": name, "value": value}
        ) from None
    return value


def _time_bound(value: str, name: str, *, upper: bool) -> str:
    """Return a bound comparable, as text, with stored HHMMSS[.FFFFFF] values."""
    value = value.replace(":", "")
    if not _TIME_RE.fullmatch(value):
        raise bad_request(
            _("%(name)s: %(value)s is not a time (HHMMSS.FFFFFF) or a range of times.")
            % {"name": name, "value": value[:20]}
        )
    if not upper:
        return value
    # The end of a range includes the whole of its last unit: "-1430" runs to 14:30:59.999999.
    full = "235959.999999"
    if "." in value:
        return value + "9" * (13 - len(value))
    return value + full[len(value) :]
