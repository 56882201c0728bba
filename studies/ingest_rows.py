"""The index rows of one ingest request: staged instances, their study, series and
instance rows, the counters, and how an instance is judged against a stored one.

``studies.ingest`` runs the pipeline (parse, validate, put, one transaction) and
calls these inside that transaction; nothing here commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from hospitals.models import CLINICAL_ROLES, Institution
from hospitals.services import institution_role_group
from regional_cloud.models import AuditEvent
from studies import failure, ingest_sql
from studies.access import VIEW, study_access_grant
from studies.bulk_insert import JsonText, insert_new_rows
from studies.dicom_parse import ParsedInstance
from studies.ingest_put import PendingPut
from studies.ingest_sql import Known, KnownSeries, KnownStudy, StoredInstance
from studies.ingest_types import InstanceResult, Outcome, ReceivedFile, Sender
from studies.models import Instance, Patient, Series, Study, StudyGrant


@dataclass
class Staged:
    """An instance whose object is being put into the archive, waiting for its rows."""

    parsed: ParsedInstance
    received: ReceivedFile
    key: str
    put: PendingPut  # awaited before its rows commit (studies/ingest_put.py)
    result: InstanceResult
    metadata: JsonText  # the instance's DICOM JSON, encoded (parsed.json is emptied)
    # Study- and series-level attributes (encoded), for a row that may have to be created.
    study_metadata: str
    series_metadata: str
    # What the index held for its UIDs, once the request's look-up has asked.
    known: Known | None = None


# What the rows (_study_for, _patient_for, _series_for, _instance_row) read with parsed.text():
# studies.ingest keeps only these once an instance is staged.
INDEX_KEYWORDS = (  # noqa: SIM905 - a list of fourteen names reads better as words
    "PatientID PatientName PatientSex PatientBirthDate AccessionNumber StudyID StudyDate "
    "StudyTime StudyDescription ReferringPhysicianName SeriesNumber SeriesDescription "
    "BodyPartExamined InstanceNumber"
).split()


def existing_outcome(
    result: InstanceResult, existing: StoredInstance, received: ReceivedFile, sender: Sender
) -> InstanceResult:
    """Judge an instance whose SOP Instance UID is stored: already there, or refused."""
    if existing.sha256 == received.sha256 and existing.origin_id == sender.institution.pk:
        result.outcome = Outcome.ALREADY_STORED
        return result
    if existing.sha256 == received.sha256:
        # Same bytes sent by another institution: it gains nothing by resending.
        return refuse(
            result,
            "stored_by_other_institution",
            _("This instance is already in the archive, sent by another institution."),
            failure.DUPLICATE_SOP_INSTANCE,
        )
    return refuse(
        result,
        "duplicate_uid_other_bytes",
        _(
            "An instance with this SOP Instance UID is already stored with different content; "
            "the stored object is kept (status 0x0111)."
        ),
        failure.DUPLICATE_SOP_INSTANCE,
    )


def refused(received: ReceivedFile, code: str, reason: str, failure_reason: int) -> InstanceResult:
    return InstanceResult(
        outcome=Outcome.REFUSED,
        code=code,
        reason=reason,
        failure_reason=failure_reason,
        name=received.name,
    )


def refuse(result: InstanceResult, code: str, reason: str, failure_reason: int) -> InstanceResult:
    result.outcome = Outcome.REFUSED
    result.code = code
    result.reason = reason
    result.failure_reason = failure_reason
    return result


def row_order(item: Staged) -> tuple[str, str, str]:
    parsed = item.parsed
    return parsed.study_instance_uid, parsed.series_instance_uid, parsed.sop_instance_uid


@dataclass
class Tally:
    """What one request added, per series and per study pk: (instances, bytes)."""

    series: dict[int, tuple[int, int]] = field(default_factory=dict)
    studies: dict[int, tuple[int, int]] = field(default_factory=dict)

    def add(self, study_id: int, series_id: int, size: int) -> None:
        for counts, pk in ((self.series, series_id), (self.studies, study_id)):
            instances, total = counts.get(pk, (0, 0))
            counts[pk] = (instances + 1, total + size)


class RequestRows:
    """The study and series rows of one request, each looked up (or created) once."""

    def __init__(self, sender: Sender, staged: list[Staged]):
        self.sender = sender
        # The first instance of each study and series in the request's order.
        self.first_of_study: dict[str, Staged] = {}
        self.first_of_series: dict[str, Staged] = {}
        for item in staged:
            self.first_of_study.setdefault(item.parsed.study_instance_uid, item)
            self.first_of_series.setdefault(item.parsed.series_instance_uid, item)
        self.studies: dict[str, KnownStudy | None] = {}
        self.study_by_pk: dict[int, KnownStudy] = {}
        self.series: dict[str, KnownSeries] = {}
        self.studies_with_new_series: set[int] = set()

    def resolve(self, item: Staged) -> tuple[KnownStudy, int]:
        """Return the study and series pk, or raise ``Misplaced`` (not the sender's to add to)."""
        parsed, known = item.parsed, item.known
        assert known is not None, "resolved before the index look-up"
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
            raise Misplaced(
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
            raise Misplaced(
                "series_conflict", _("The Series Instance UID belongs to another study.")
            )
        return study, series.pk


class Misplaced(Exception):
    """The instance names a study or series it may not be added to."""

    def __init__(self, code: str, reason: str):
        super().__init__(code)
        self.code = code
        self.reason = reason


def _patient_id(parsed: ParsedInstance) -> str:
    return parsed.text("PatientID").strip()[:64]


def insert_instances(
    placed: list[tuple[Staged, KnownStudy, int]],
    *,
    sender: Sender,
    conflicts: list[InstanceResult],
) -> Tally:
    """Insert the instance rows that are new; judge the others as already stored or refused."""
    tally = Tally()
    first: dict[str, tuple[Staged, KnownStudy, int]] = {}
    repeats: list[Staged] = []  # the same SOP Instance UID twice in one request
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
            existing_outcome(
                item.result, existing[item.parsed.sop_instance_uid], item.received, sender
            )
            if item.result.failure_reason == failure.DUPLICATE_SOP_INSTANCE:
                conflicts.append(item.result)
    return tally


def _instance_row(item: Staged, *, study_id: int, series_id: int) -> Instance:
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


def _study_for(item: Staged, *, sender: Sender) -> KnownStudy:
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
            "metadata": json.loads(item.study_metadata),
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


def _series_for(item: Staged, study: KnownStudy) -> tuple[bool, KnownSeries]:
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
            "metadata": json.loads(item.series_metadata),
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


def add_to_counters(
    tally: Tally, *, new_series: set[int], audit_events: Sequence[AuditEvent] = ()
) -> None:
    """Add what this request stored to its series' and studies' counters.

    The increments lock the rows; a study that gained a series then has its
    series read again. A concurrent request adding another series either
    committed before our lock (we read its series) or waits for our commit and
    reads ours, so the last to commit writes the full list. ``audit_events``
    (unsaved) are inserted in the same round trip.
    """
    ingest_sql.counters_add(
        series=tally.series, studies=tally.studies, now=timezone.now(), inserts_first=audit_events
    )
    for study_id in sorted(new_series & tally.studies.keys()):
        modalities = list(Series.objects.filter(study_id=study_id).values_list("modality"))
        Study.objects.filter(pk=study_id).update(
            number_of_series=len(modalities),
            modalities_in_study="\\".join(sorted({m for (m,) in modalities}))[:64],
        )


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.split("\\")[0])
    except (ValueError, IndexError):
        return None
