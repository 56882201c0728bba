"""The one ingest pipeline: every path into the archive (STOW-RS, web upload,
edge push, the demo) ends here.

parse → validate → archive put (verified; in a worker thread, beside the
index look-up and the index writes) → index rows for the whole request in one
transaction, committed only once every put is durable → grant the origin
institution → after commit: routing and notifications.

Idempotent on SOP Instance UID: the same bytes again is a success that adds
nothing; other bytes under a stored UID are refused (0x0111, HTTP 409) and
audited. The origin institution is the authenticated sender's, never a tag.
Objects are keyed by UIDs plus a prefix of their SHA-256, so two different
objects can never overwrite each other at one key, whatever the timing; an
object whose rows never commit is an orphan that ``reconcile`` reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from hospitals.models import CLINICAL_ROLES, Institution
from hospitals.services import institution_role_group
from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent
from studies import failure, ingest_sql
from studies.access import VIEW, study_access_grant
from studies.archive import ArchiveError, get_store
from studies.archive.base import validate_uid
from studies.bulk_insert import JsonText, insert_new_rows
from studies.dicom_parse import InvalidInstance, ParsedInstance, parse_instance
from studies.dicom_tags import SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS, pick
from studies.ingest_put import PendingPut, put_started
from studies.ingest_sql import Known, KnownSeries, KnownStudy, StoredInstance, index_lookup
from studies.ingest_types import IngestReport, InstanceResult, Outcome, ReceivedFile, Sender
from studies.models import Instance, Patient, Series, Study, StudyGrant

logger = logging.getLogger(__name__)


@dataclass
class _Staged:
    """An instance whose object is being put into the archive, waiting for its rows."""

    parsed: ParsedInstance
    received: ReceivedFile
    key: str
    put: PendingPut  # awaited before its rows commit (studies/ingest_put.py)
    result: InstanceResult
    known: Known  # what the index held for its UIDs when it arrived
    metadata: JsonText  # the instance's DICOM JSON, encoded (parsed.json is emptied)
    # Study- and series-level attributes (encoded), kept only if the row may have to be created.
    study_metadata: str | None
    series_metadata: str | None


# Called after commit with the UIDs of studies that gained instances (routing,
# thumbnails, notifications register here; the archive knows none of them).
AFTER_INGEST: list[Callable[[list[str]], None]] = []


def archive_key(parsed: ParsedInstance, sha256: str) -> str:
    """Return where an object lives: its UIDs, then the first 16 hex of its SHA-256.

    ``<sop>.<sha16>.dcm`` in the series' folder, not ``<sop>/<sha16>.dcm``: a
    folder per instance cost the folder store a mkdir and an fsync of the series
    folder on every put. Rows keep the key they were stored under, so objects
    stored under the older layout stay where they are and are read as before.
    """
    study = validate_uid(parsed.study_instance_uid)
    series = validate_uid(parsed.series_instance_uid)
    sop = validate_uid(parsed.sop_instance_uid)
    return f"dicom/{study}/{series}/{sop}.{sha256[:16]}.dcm"


def instances_ingest(
    *,
    files: Iterable[ReceivedFile],
    sender: Sender,
    expected_study_uid: str | None = None,
) -> IngestReport:
    """Ingest every file; index all that passed in one transaction.

    Each file is parsed, validated and put into the archive as it comes, so a
    request of any size streams through; the files may be closed afterwards.
    """
    report = IngestReport()
    staged: list[_Staged] = []
    conflicts: list[InstanceResult] = []
    try:
        for received in files:
            result, stage = _stage(received, sender=sender, expected_study_uid=expected_study_uid)
            report.results.append(result)
            if stage is None:
                if result.failure_reason == failure.DUPLICATE_SOP_INSTANCE:
                    conflicts.append(result)
                continue
            # At most two puts in flight: this one, beside the next file's parsing,
            # and the last one, beside the index transaction (waited for before COMMIT).
            if staged and not _put_succeeded(staged[-1]):
                staged.pop()
            staged.append(stage)
        _index(staged, conflicts, sender=sender, report=report)
    except BaseException:
        _discard_unindexed(staged)
        raise
    return report


def _put_succeeded(item: _Staged) -> bool:
    """Wait for the item's put; on an archive error refuse it (nothing was kept)."""
    error = item.put.wait()
    if error is None:
        return True
    logger.error("archive put failed for key %s", item.key, exc_info=error)
    _refuse(
        item.result,
        "archive_unavailable",
        _("The archive could not store the object; nothing was kept. Try again later."),
        failure.OUT_OF_RESOURCES,
    )
    return False


def _abandon(key: str, put: PendingPut) -> None:
    """Delete the object of a put whose rows will not be written, once the put is done."""
    try:
        if put.wait() is None:
            get_store().delete(key)
    except ArchiveError:
        logger.warning("could not delete unindexed object %s; reconcile will find it", key)


def _discard_unindexed(staged: list[_Staged]) -> None:
    """Delete the objects of a request that failed before its rows were committed."""
    for item in staged:
        # A put still running would link its object after our delete.
        with contextlib.suppress(Exception):
            item.put.wait()
    keys = [item.key for item in staged]
    indexed = set(
        Instance.objects.filter(archive_key__in=keys).values_list("archive_key", flat=True)
    )
    store = get_store()
    for key in keys:
        if key not in indexed:
            try:
                store.delete(key)
            except ArchiveError:
                logger.warning("could not delete unindexed object %s; reconcile will find it", key)


def _stage(
    received: ReceivedFile, *, sender: Sender, expected_study_uid: str | None
) -> tuple[InstanceResult, _Staged | None]:
    try:
        parsed = parse_instance(received.stream)
    except InvalidInstance as exc:
        return _refused(received, exc.code, str(exc.reason), exc.failure_reason), None
    result = InstanceResult(
        outcome=Outcome.STORED,
        sop_class_uid=parsed.sop_class_uid,
        sop_instance_uid=parsed.sop_instance_uid,
        study_instance_uid=parsed.study_instance_uid,
        name=received.name,
    )
    if expected_study_uid and parsed.study_instance_uid != expected_study_uid:
        return _refuse(
            result,
            "study_uid_mismatch",
            _("The instance's Study Instance UID differs from the one in the request URL."),
            failure.DATASET_DOES_NOT_MATCH,
        ), None
    if not parsed.text("PatientID").strip():
        return _refuse(
            result,
            "missing_patient_id",
            _("Patient ID is missing: the archive indexes patients by their institution's ID."),
            failure.DATASET_DOES_NOT_MATCH,
        ), None
    # The put starts before the index is asked whether the UID is stored: its
    # write and fsyncs then run beside the look-up and the index transaction.
    # A resend of stored bytes finds them at the same key and leaves them be.
    key = archive_key(parsed, received.sha256)
    put = put_started(get_store(), key, received)
    try:
        known = index_lookup(
            sop_instance_uid=parsed.sop_instance_uid,
            study_instance_uid=parsed.study_instance_uid,
            series_instance_uid=parsed.series_instance_uid,
        )
    except BaseException:
        _abandon(key, put)
        raise
    if known.instance is not None:
        if known.instance.archive_key != key:
            # Other bytes under a stored UID (or the same bytes stored under the
            # older layout): no row will ever name this key.
            _abandon(key, put)
        return _existing_outcome(result, known.instance, received, sender), None
    # Until the request's one index transaction only what the rows need stays
    # (the file may now close): the header values they read and the DICOM JSON
    # as text — ~5 KiB an instance instead of ~64 KiB of pydicom and JSON objects,
    # ~110 MB less at the peak of a 1 GB STOW.
    staged = _Staged(
        parsed=parsed,
        received=received,
        key=key,
        put=put,
        result=result,
        known=known,
        metadata=JsonText(json.dumps(parsed.json)),
        study_metadata=_encoded_pick(parsed, STUDY_LEVEL_TAGS) if known.study is None else None,
        series_metadata=_encoded_pick(parsed, SERIES_LEVEL_TAGS) if known.series is None else None,
    )
    parsed.keep_only_text(INDEX_KEYWORDS)
    return result, staged


# What _index, _study_for, _patient_for and _series_for read with parsed.text().
INDEX_KEYWORDS = (  # noqa: SIM905 - a list of fourteen names reads better as words
    "PatientID PatientName PatientSex PatientBirthDate AccessionNumber StudyID StudyDate "
    "StudyTime StudyDescription ReferringPhysicianName SeriesNumber SeriesDescription "
    "BodyPartExamined InstanceNumber"
).split()


def _encoded_pick(parsed: ParsedInstance, tags: frozenset[str]) -> str:
    return json.dumps(pick(parsed.json, tags))


def _existing_outcome(
    result: InstanceResult, existing: StoredInstance, received: ReceivedFile, sender: Sender
) -> InstanceResult:
    if existing.sha256 == received.sha256 and existing.origin_id == sender.institution.pk:
        result.outcome = Outcome.ALREADY_STORED
        return result
    if existing.sha256 == received.sha256:
        # Same bytes sent by another institution: it gains nothing by resending.
        return _refuse(
            result,
            "stored_by_other_institution",
            _("This instance is already in the archive, sent by another institution."),
            failure.DUPLICATE_SOP_INSTANCE,
        )
    return _refuse(
        result,
        "duplicate_uid_other_bytes",
        _(
            "An instance with this SOP Instance UID is already stored with different content; "
            "the stored object is kept (status 0x0111)."
        ),
        failure.DUPLICATE_SOP_INSTANCE,
    )


def _refused(received: ReceivedFile, code: str, reason: str, failure_reason: int) -> InstanceResult:
    return InstanceResult(
        outcome=Outcome.REFUSED,
        code=code,
        reason=reason,
        failure_reason=failure_reason,
        name=received.name,
    )


def _refuse(result: InstanceResult, code: str, reason: str, failure_reason: int) -> InstanceResult:
    result.outcome = Outcome.REFUSED
    result.code = code
    result.reason = reason
    result.failure_reason = failure_reason
    return result


def _index(
    staged: list[_Staged],
    conflicts: list[InstanceResult],
    *,
    sender: Sender,
    report: IngestReport,
) -> None:
    """Write the rows in one transaction; if a put failed meanwhile, again without it.

    The transaction rolls back, what it changed in the results is undone, the
    failed instances are refused, and the others are indexed anew (their puts
    are done by then, so this happens at most once).
    """
    while True:
        before = _Snapshot(staged, conflicts, report)
        try:
            _index_once(staged, conflicts, sender=sender, report=report)
            return
        except _PutFailed as exc:
            before.restore()
            for item in exc.items:
                _put_succeeded(item)  # refuses it
            staged = [item for item in staged if item not in exc.items]


class _PutFailed(Exception):
    """An object whose rows were written is not in the archive: roll them back."""

    def __init__(self, items: list[_Staged]):
        super().__init__(", ".join(item.key for item in items))
        self.items = items


class _Snapshot:
    """What a rolled-back index transaction may have changed outside the database."""

    def __init__(
        self, staged: list[_Staged], conflicts: list[InstanceResult], report: IngestReport
    ):
        self.results = [(item.result, dataclasses.replace(item.result)) for item in staged]
        self.conflicts, self.conflict_count = conflicts, len(conflicts)
        self.report, self.study_uids = report, set(report.study_uids)

    def restore(self) -> None:
        for result, saved in self.results:
            vars(result).update(vars(saved))
        del self.conflicts[self.conflict_count :]
        self.report.study_uids = self.study_uids


def _index_once(
    staged: list[_Staged],
    conflicts: list[InstanceResult],
    *,
    sender: Sender,
    report: IngestReport,
) -> None:
    """Write the rows of every staged instance in one transaction, then audit.

    One transaction and no savepoint per instance: instance rows go in with
    ``INSERT … ON CONFLICT DO NOTHING``, so a SOP Instance UID another request
    committed first is simply not inserted, and is then judged like any stored
    one. Only creating a patient, study or series (once each) takes a
    savepoint, in ``get_or_create``.
    """
    if not staged and not conflicts and not report.refused:
        return
    with transaction.atomic():
        rows = _RequestRows(sender, staged)
        placed: list[tuple[_Staged, KnownStudy, int]] = []
        # Sorted, so that two requests always create rows in the same order (the
        # attributes of a new study or series still come from its first instance).
        for item in sorted(staged, key=_row_order):
            try:
                study, series_id = rows.resolve(item)
            except _Misplaced as exc:
                _refuse(item.result, exc.code, exc.reason, failure.DATASET_DOES_NOT_MATCH)
            else:
                placed.append((item, study, series_id))
        tally = _insert_instances(placed, sender=sender, conflicts=conflicts)
        for study_id in sorted(tally.studies):
            study = rows.study_by_pk[study_id]
            audit(
                action="study.ingest",
                actor=sender.user,
                institution=sender.institution,
                object_type="study",
                object_id=study.uuid,
                patient_ref=study.patient_uuid,
                study_uid=study.study_instance_uid,
                ip=sender.ip,
                detail={"stored": tally.studies[study_id][0]},
            )
            report.study_uids.add(study.study_instance_uid)
        for conflict in conflicts:
            audit(
                action="instance.duplicate_conflict",
                actor=sender.user,
                institution=sender.institution,
                object_type="instance",
                object_id=conflict.sop_instance_uid,
                study_uid=conflict.study_instance_uid,
                outcome=AuditEvent.Outcome.DENIED,
                ip=sender.ip,
                detail={"code": conflict.code},
            )
        other_refusals = [r for r in report.refused if r not in conflicts]
        if other_refusals:
            audit(
                action="ingest.refused",
                actor=sender.user,
                institution=sender.institution,
                outcome=AuditEvent.Outcome.DENIED,
                ip=sender.ip,
                detail={
                    "count": len(other_refusals),
                    "codes": sorted({r.code for r in other_refusals}),
                },
            )
        # The objects were being written meanwhile; none of these rows may
        # commit before every object is durable (fsync'ed and verified). Waited
        # for before the counters, so that the row locks are not held meanwhile.
        failed = [item for item in staged if item.put.wait() is not None]
        if failed:
            raise _PutFailed(failed)
        # Last before the commit: the counter updates lock the series and study
        # rows, so a concurrent request for the same study waits only for our commit.
        _add_to_counters(tally, new_series=rows.studies_with_new_series)
        new_studies = sorted(report.study_uids)
        if new_studies:
            transaction.on_commit(lambda: _after_ingest(new_studies))


def _row_order(item: _Staged) -> tuple[str, str, str]:
    parsed = item.parsed
    return parsed.study_instance_uid, parsed.series_instance_uid, parsed.sop_instance_uid


@dataclass
class _Tally:
    """What one request added, per series and per study pk: (instances, bytes)."""

    series: dict[int, tuple[int, int]] = field(default_factory=dict)
    studies: dict[int, tuple[int, int]] = field(default_factory=dict)

    def add(self, study_id: int, series_id: int, size: int) -> None:
        for counts, pk in ((self.series, series_id), (self.studies, study_id)):
            instances, total = counts.get(pk, (0, 0))
            counts[pk] = (instances + 1, total + size)


class _RequestRows:
    """The study and series rows of one request, each looked up (or created) once."""

    def __init__(self, sender: Sender, staged: list[_Staged]):
        self.sender = sender
        # The first instance of each study and series in the request's order.
        self.first_of_study: dict[str, _Staged] = {}
        self.first_of_series: dict[str, _Staged] = {}
        for item in staged:
            self.first_of_study.setdefault(item.parsed.study_instance_uid, item)
            self.first_of_series.setdefault(item.parsed.series_instance_uid, item)
        self.studies: dict[str, KnownStudy | None] = {}
        self.study_by_pk: dict[int, KnownStudy] = {}
        self.series: dict[str, KnownSeries] = {}
        self.studies_with_new_series: set[int] = set()

    def resolve(self, item: _Staged) -> tuple[KnownStudy, int]:
        """Return the study and series pk, or raise ``_Misplaced`` (not the sender's to add to)."""
        parsed, known = item.parsed, item.known
        uid = parsed.study_instance_uid
        if uid not in self.studies:
            # Seen when the instance arrived, or else created now (a concurrent
            # request may have created it meanwhile: get_or_create finds it).
            first = self.first_of_study[uid]
            self.studies[uid] = known.study or _study_for(first, sender=self.sender)
        study = self.studies[uid]
        if (
            study is None
            or study.origin_id != self.sender.institution.pk
            or study.issuer_id != self.sender.institution.pk
            or study.patient_id != _patient_id(parsed)
        ):
            raise _Misplaced(
                "study_conflict",
                _("The Study Instance UID belongs to another institution or patient."),
            )
        self.study_by_pk[study.pk] = study
        series_uid = parsed.series_instance_uid
        if series_uid not in self.series:
            series = known.series
            if series is None:
                created, series = _series_for(self.first_of_series[series_uid], study)
                if created:
                    self.studies_with_new_series.add(study.pk)
            self.series[series_uid] = series
        series = self.series[series_uid]
        if series.study_id != study.pk:
            raise _Misplaced(
                "series_conflict", _("The Series Instance UID belongs to another study.")
            )
        return study, series.pk


class _Misplaced(Exception):
    """The instance names a study or series it may not be added to."""

    def __init__(self, code: str, reason: str):
        super().__init__(code)
        self.code = code
        self.reason = reason


def _patient_id(parsed: ParsedInstance) -> str:
    return parsed.text("PatientID").strip()[:64]


def _insert_instances(
    placed: list[tuple[_Staged, KnownStudy, int]],
    *,
    sender: Sender,
    conflicts: list[InstanceResult],
) -> _Tally:
    """Insert the instance rows that are new; judge the others as already stored or refused."""
    tally = _Tally()
    first: dict[str, tuple[_Staged, KnownStudy, int]] = {}
    repeats: list[_Staged] = []  # the same SOP Instance UID twice in one request
    for entry in placed:
        if entry[0].parsed.sop_instance_uid in first:
            repeats.append(entry[0])
        else:
            first[entry[0].parsed.sop_instance_uid] = entry
    rows = [
        _instance_row(item, study_id=study.pk, series_id=series_id)
        for item, study, series_id in first.values()
    ]
    inserted = insert_new_rows(Instance, rows, returning="sop_instance_uid")
    for uid, (item, study, series_id) in first.items():
        if uid in inserted:
            tally.add(study.pk, series_id, item.received.size)
        else:
            # Another request committed this SOP Instance UID first.
            repeats.append(item)
    if repeats:
        existing = {
            row["sop_instance_uid"]: StoredInstance(
                row["sha256"], row["study__origin_id"], row["archive_key"]
            )
            for row in Instance.objects.filter(
                sop_instance_uid__in={item.parsed.sop_instance_uid for item in repeats}
            ).values("sop_instance_uid", "sha256", "study__origin_id", "archive_key")
        }
        for item in repeats:
            _existing_outcome(
                item.result, existing[item.parsed.sop_instance_uid], item.received, sender
            )
            if item.result.failure_reason == failure.DUPLICATE_SOP_INSTANCE:
                conflicts.append(item.result)
    return tally


def _instance_row(item: _Staged, *, study_id: int, series_id: int) -> Instance:
    parsed = item.parsed
    return Instance(
        study_id=study_id,
        series_id=series_id,
        sop_instance_uid=parsed.sop_instance_uid,
        sop_class_uid=parsed.sop_class_uid,
        instance_number=_int_or_none(parsed.text("InstanceNumber")),
        transfer_syntax_uid=parsed.transfer_syntax_uid,
        rows=parsed.rows,
        columns=parsed.columns,
        number_of_frames=parsed.number_of_frames,
        size_bytes=item.received.size,
        sha256=item.received.sha256,
        archive_key=item.key,
        pixel_data_offset=parsed.pixel_data_offset,
        metadata=item.metadata,
    )


def _study_for(item: _Staged, *, sender: Sender) -> KnownStudy:
    """Return the study of this UID, created for the sender (and granted) if there is none."""
    parsed = item.parsed
    patient = _patient_for(parsed, sender=sender)
    study, created = Study.objects.select_related("patient").get_or_create(
        study_instance_uid=parsed.study_instance_uid,
        defaults={
            "patient": patient,
            "origin": sender.institution,
            "accession_number": parsed.text("AccessionNumber")[:16],
            "study_id": parsed.text("StudyID")[:16],
            "study_date": parsed.text("StudyDate")[:8],
            "study_time": parsed.text("StudyTime")[:16],
            "study_description": parsed.text("StudyDescription")[:64],
            "referring_physician_name": parsed.text("ReferringPhysicianName")[:324],
            "metadata": json.loads(item.study_metadata or "{}"),
        },
    )
    if created:
        _grant_origin(study, sender.institution, sender.user)
    return KnownStudy(
        pk=study.pk,
        uuid=study.uuid,
        study_instance_uid=study.study_instance_uid,
        origin_id=study.origin_id,
        patient_uuid=study.patient.uuid,
        issuer_id=study.patient.issuer_id,
        patient_id=study.patient.patient_id,
    )


def _patient_for(parsed: ParsedInstance, *, sender: Sender) -> Patient:
    patient, _created = Patient.objects.get_or_create(
        issuer=sender.institution,
        patient_id=_patient_id(parsed),
        defaults={
            "patient_name": parsed.text("PatientName")[:324],
            "patient_sex": parsed.text("PatientSex")[:16],
            "patient_birth_date": parsed.text("PatientBirthDate")[:8],
        },
    )
    return patient


def _series_for(item: _Staged, study: KnownStudy) -> tuple[bool, KnownSeries]:
    """Return (created, series) for the series of this UID, created in ``study`` if new."""
    parsed = item.parsed
    series, created = Series.objects.get_or_create(
        series_instance_uid=parsed.series_instance_uid,
        defaults={
            "study_id": study.pk,
            "modality": parsed.modality,
            "series_number": _int_or_none(parsed.text("SeriesNumber")),
            "series_description": parsed.text("SeriesDescription")[:64],
            "body_part_examined": parsed.text("BodyPartExamined")[:16],
            "metadata": json.loads(item.series_metadata or "{}"),
        },
    )
    return created, KnownSeries(pk=series.pk, study_id=series.study_id)


def _grant_origin(study: Study, institution: Institution, actor: Any) -> None:
    """Let the origin institution's clinical roles see the study they sent."""
    for role in sorted(CLINICAL_ROLES):
        study_access_grant(
            study=study,
            grantee=institution_role_group(institution, role),
            codenames=[VIEW],
            source=StudyGrant.Source.ORIGIN,
            source_ref=str(institution.uuid),
            actor=actor,
        )


def _add_to_counters(tally: _Tally, *, new_series: set[int]) -> None:
    """Add what this request stored to its series' and studies' counters.

    The increments lock the rows; a study that gained a series then has its
    series read again. A concurrent request adding another series either
    committed before our lock (we read its series) or waits for our commit and
    reads ours, so the last to commit writes the full list.
    """
    ingest_sql.counters_add(series=tally.series, studies=tally.studies, now=timezone.now())
    for study_id in sorted(new_series & tally.studies.keys()):
        modalities = list(Series.objects.filter(study_id=study_id).values_list("modality"))
        Study.objects.filter(pk=study_id).update(
            number_of_series=len(modalities),
            modalities_in_study="\\".join(sorted({m for (m,) in modalities}))[:64],
        )


def _after_ingest(study_uids: list[str]) -> None:
    for hook in AFTER_INGEST:
        try:
            hook(study_uids)
        except Exception:
            # A failing side effect must not turn a stored study into an error.
            logger.exception("after-ingest hook %s failed", getattr(hook, "__name__", hook))


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.split("\\")[0])
    except (ValueError, IndexError):
        return None
