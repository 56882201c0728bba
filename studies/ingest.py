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
import functools
import json
import logging
from collections.abc import Callable, Iterable

from django.db import transaction
from django.utils.translation import gettext as _

from regional_cloud.audit import audit_event
from regional_cloud.models import AuditEvent
from studies import failure
from studies.archive import ArchiveError, get_store
from studies.archive.base import validate_uid
from studies.bulk_insert import JsonText
from studies.dicom_parse import InvalidInstance, ParsedInstance, parse_instance
from studies.dicom_tags import SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS, pick
from studies.ingest_put import PendingPut, put_started
from studies.ingest_rows import (
    INDEX_KEYWORDS,
    Misplaced,
    RequestRows,
    Staged,
    add_to_counters,
    existing_outcome,
    insert_instances,
    refuse,
    refused,
    row_order,
)
from studies.ingest_sql import KnownStudy, index_lookup
from studies.ingest_types import IngestReport, InstanceResult, Outcome, ReceivedFile, Sender
from studies.models import Instance

logger = logging.getLogger(__name__)


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
    staged: list[Staged] = []
    conflicts: list[InstanceResult] = []
    try:
        for received in files:
            result, stage = _stage(received, expected_study_uid=expected_study_uid)
            report.results.append(result)
            if stage is None:
                continue
            # At most two puts in flight: this one, beside the next file's parsing,
            # and the last one, beside the index look-up and transaction (judged
            # before COMMIT). The others are judged once the look-up has said
            # which instances are new: an instance already stored needs no put.
            if staged:
                staged[-1].put.wait()
            staged.append(stage)
        new = _new_to_the_index(staged, conflicts, sender=sender)
        _index(new, conflicts, sender=sender, report=report)
    except BaseException:
        _discard_unindexed(staged)
        raise
    return report


def _new_to_the_index(
    staged: list[Staged], conflicts: list[InstanceResult], *, sender: Sender
) -> list[Staged]:
    """Look the request's instances up in the index; return those it does not hold.

    Those it holds are judged (already stored, or refused); an object put under
    another key than the stored one's is deleted again. The new ones learn what
    the index holds of their study and series, and those whose put has already
    failed are refused.
    """
    found = index_lookup(
        [
            (p.sop_instance_uid, p.study_instance_uid, p.series_instance_uid)
            for p in (item.parsed for item in staged)
        ]
    )
    new: list[Staged] = []
    for item, known in zip(staged, found, strict=True):
        if known.instance is None:
            item.known = known
            new.append(item)
            continue
        if known.instance.archive_key != item.key:
            # Other bytes under a stored UID (or the same bytes stored under the
            # older layout): no row will ever name this key.
            _abandon(item.key, item.put)
        existing_outcome(item.result, known.instance, item.received, sender)
        if item.result.failure_reason == failure.DUPLICATE_SOP_INSTANCE:
            conflicts.append(item.result)
    # Every put but the last is done; the last is judged before the COMMIT.
    return [item for item in new[:-1] if _put_succeeded(item)] + new[-1:]


def _put_succeeded(item: Staged) -> bool:
    """Wait for the item's put; on an archive error refuse it (nothing was kept)."""
    error = item.put.wait()
    if error is None:
        return True
    logger.error("archive put failed for key %s", item.key, exc_info=error)
    refuse(
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


def _discard_unindexed(staged: list[Staged]) -> None:
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
    received: ReceivedFile, *, expected_study_uid: str | None
) -> tuple[InstanceResult, Staged | None]:
    try:
        parsed = parse_instance(received.stream)
    except InvalidInstance as exc:
        return refused(received, exc.code, str(exc.reason), exc.failure_reason), None
    result = InstanceResult(
        outcome=Outcome.STORED,
        sop_class_uid=parsed.sop_class_uid,
        sop_instance_uid=parsed.sop_instance_uid,
        study_instance_uid=parsed.study_instance_uid,
        name=received.name,
    )
    if expected_study_uid and parsed.study_instance_uid != expected_study_uid:
        return refuse(
            result,
            "study_uid_mismatch",
            _("The instance's Study Instance UID differs from the one in the request URL."),
            failure.DATASET_DOES_NOT_MATCH,
        ), None
    if not parsed.text("PatientID").strip():
        return refuse(
            result,
            "missing_patient_id",
            _("Patient ID is missing: the archive indexes patients by their institution's ID."),
            failure.DATASET_DOES_NOT_MATCH,
        ), None
    # The put starts before the index is asked whether the UID is stored: its
    # write and fsyncs then run beside the look-up and the index transaction.
    # A resend of stored bytes finds them at the same key and leaves them be.
    key = archive_key(parsed, received.sha256)
    # Until the request's one index transaction only what the rows need stays
    # (the file may now close): the header values they read and the DICOM JSON
    # as text — ~5 KiB an instance instead of ~64 KiB of pydicom and JSON objects,
    # ~110 MB less at the peak of a 1 GB STOW.
    staged = Staged(
        parsed=parsed,
        received=received,
        key=key,
        put=put_started(get_store(), key, received),
        result=result,
        metadata=JsonText(json.dumps(parsed.json)),
        study_metadata=_encoded_pick(parsed, STUDY_LEVEL_TAGS),
        series_metadata=_encoded_pick(parsed, SERIES_LEVEL_TAGS),
    )
    parsed.keep_only_text(INDEX_KEYWORDS)
    return result, staged


def _encoded_pick(parsed: ParsedInstance, tags: frozenset[str]) -> str:
    return json.dumps(pick(parsed.json, tags))


def _index(
    staged: list[Staged],
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

    def __init__(self, items: list[Staged]):
        super().__init__(", ".join(item.key for item in items))
        self.items = items


class _Snapshot:
    """What a rolled-back index transaction may have changed outside the database."""

    def __init__(self, staged: list[Staged], conflicts: list[InstanceResult], report: IngestReport):
        self.results = [(item.result, dataclasses.replace(item.result)) for item in staged]
        self.conflicts, self.conflict_count = conflicts, len(conflicts)
        self.report, self.study_uids = report, set(report.study_uids)

    def restore(self) -> None:
        for result, saved in self.results:
            vars(result).update(vars(saved))
        del self.conflicts[self.conflict_count :]
        self.report.study_uids = self.study_uids


def _index_once(
    staged: list[Staged],
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
        rows = RequestRows(sender, staged)
        placed: list[tuple[Staged, KnownStudy, int]] = []
        # Sorted, so that two requests always create rows in the same order (the
        # attributes of a new study or series still come from its first instance).
        for item in sorted(staged, key=row_order):
            try:
                study, series_id = rows.resolve(item)
            except Misplaced as exc:
                refuse(item.result, exc.code, exc.reason, failure.DATASET_DOES_NOT_MATCH)
            else:
                placed.append((item, study, series_id))
        tally = insert_instances(placed, sender=sender, conflicts=conflicts)
        # Written with the counters, in their round trip (add_to_counters).
        events: list[AuditEvent] = []
        by_sender = functools.partial(
            audit_event, actor=sender.user, institution=sender.institution, ip=sender.ip
        )
        for study_id in sorted(tally.studies):
            study = rows.study_by_pk[study_id]
            events.append(
                by_sender(
                    action="study.ingest",
                    object_type="study",
                    object_id=study.uuid,
                    patient_ref=study.patient_uuid,
                    study_uid=study.study_instance_uid,
                    detail={"stored": tally.studies[study_id][0]},
                )
            )
            report.study_uids.add(study.study_instance_uid)
        for conflict in conflicts:
            events.append(
                by_sender(
                    action="instance.duplicate_conflict",
                    object_type="instance",
                    object_id=conflict.sop_instance_uid,
                    study_uid=conflict.study_instance_uid,
                    outcome=AuditEvent.Outcome.DENIED,
                    detail={"code": conflict.code},
                )
            )
        other_refusals = [r for r in report.refused if r not in conflicts]
        if other_refusals:
            events.append(
                by_sender(
                    action="ingest.refused",
                    outcome=AuditEvent.Outcome.DENIED,
                    detail={
                        "count": len(other_refusals),
                        "codes": sorted({r.code for r in other_refusals}),
                    },
                )
            )
        # The objects were being written meanwhile; none of these rows may
        # commit before every object is durable (fsync'ed and verified). Waited
        # for before the counters, so that the row locks are not held meanwhile.
        failed = [item for item in staged if item.put.wait() is not None]
        if failed:
            raise _PutFailed(failed)
        # Last before the commit: the counter updates lock the series and study
        # rows, so a concurrent request for the same study waits only for our commit.
        add_to_counters(tally, new_series=rows.studies_with_new_series, audit_events=events)
        new_studies = sorted(report.study_uids)
        if new_studies:
            transaction.on_commit(lambda: _after_ingest(new_studies))


def _after_ingest(study_uids: list[str]) -> None:
    for hook in AFTER_INGEST:
        try:
            hook(study_uids)
        except Exception:
            # A failing side effect must not turn a stored study into an error.
            logger.exception("after-ingest hook %s failed", getattr(hook, "__name__", hook))
