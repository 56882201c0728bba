"""Reports: draft → preliminary → final (signed), addenda, refusals, who may read them, audit."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction
from django.test import TestCase

from regional_cloud.models import AuditEvent
from studies.models import ReadingTask, Report, ReportTemplate
from studies.reading import signing
from studies.reading.services import (
    ClaimHeld,
    ReadingError,
    reading_task_claim,
    report_addendum_save,
    report_mark_preliminary,
    report_save,
    report_sign,
    report_verify,
)
from tests.reading_helpers import PATIENT_DISPLAY, ingest, make_reading_region, task_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("file_archive")]

FINDINGS = "双肺纹理清晰，未见明确实质性病灶。"
IMPRESSION = "胸部CT平扫未见明显异常。"


@pytest.fixture
def region():
    return make_reading_region()


@pytest.fixture
def task(region):
    return task_of(ingest(region["clinic"], region.clinic_doctor))


def claimed(task, user):
    return reading_task_claim(task=task, user=user)


def signed_report(task, user) -> Report:
    claimed(task, user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        report = report_save(task=task, user=user, findings=FINDINGS, impression=IMPRESSION)
        return report_sign(report=report, user=user)


def test_it_seeds_report_templates_for_the_common_studies():
    names = set(ReportTemplate.objects.values_list("modality", "body_part"))
    for expected in [("CT", "CHEST"), ("DX", "CHEST"), ("US", "ABDOMEN"), ("MR", "HEAD")]:
        assert expected in names
    assert ReportTemplate.objects.filter(modality="ECG").exists()
    ct = ReportTemplate.objects.filter(modality="CT", body_part="CHEST").first()
    assert "双肺" in ct.findings


def test_it_takes_a_report_from_draft_through_preliminary_to_final(region, task):
    wang = region.specialist
    claimed(task, wang)

    draft = report_save(task=task, user=wang, findings="草稿", impression="")
    assert draft.state == Report.State.DRAFT
    task.refresh_from_db()
    assert task.status == ReadingTask.Status.IN_PROGRESS

    report_save(task=task, user=wang, findings=FINDINGS, impression=IMPRESSION)
    preliminary = report_mark_preliminary(report=draft, user=wang)
    assert preliminary.state == Report.State.PRELIMINARY
    assert preliminary.preliminary_at is not None

    final = report_sign(report=preliminary, user=wang)
    final.refresh_from_db()
    assert final.state == Report.State.FINAL
    assert final.signed_by == wang
    assert final.findings == FINDINGS
    assert len(final.content_sha256) == 64
    assert report_verify(final)
    task.refresh_from_db()
    assert task.status == ReadingTask.Status.FINAL
    assert task.finalized_at is not None
    assert task.claimed_by is None  # signing gives the study back
    actions = list(
        AuditEvent.objects.filter(object_id=str(final.uuid))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["report.create", "report.update", "report.preliminary", "report.sign"]


def test_it_binds_the_signature_to_content_signer_and_time(region, task):
    report = signed_report(task, region.specialist)
    assert report_verify(report)

    for field, value in [
        ("findings", FINDINGS + "（改）"),
        ("impression", "另一个结论"),
        ("critical", True),
        ("signed_by_id", region.specialist2.pk),
        ("author_id", region.specialist2.pk),
    ]:
        tampered = Report.objects.get(pk=report.pk)
        setattr(tampered, field, value)
        assert not report_verify(tampered), field
    tampered = Report.objects.get(pk=report.pk)
    tampered.signed_at = tampered.signed_at.replace(
        microsecond=(tampered.signed_at.microsecond + 1) % 10**6
    )
    assert not report_verify(tampered)
    # A matching hash without the key's HMAC is not enough.
    forged = Report.objects.get(pk=report.pk)
    forged.findings = "伪造"
    forged.content_sha256, _sig = signing.seal(
        forged, signer_id=forged.signed_by_id, signed_at=forged.signed_at
    )
    assert not report_verify(forged)


def test_it_never_edits_a_final_report_in_place(region, task):
    wang = region.specialist
    report = signed_report(task, wang)
    claimed(task, wang)

    with pytest.raises(ReadingError) as refused:
        report_save(task=task, user=wang, findings="改写", impression="")
    assert refused.value.code == "report_final"
    with pytest.raises(ReadingError) as again:
        report_sign(report=report, user=wang)
    assert again.value.code == "report_final"
    # The database refuses too.
    with pytest.raises(DatabaseError), transaction.atomic():
        Report.objects.filter(pk=report.pk).update(findings="改写")
    report.refresh_from_db()
    assert report.findings == FINDINGS
    assert report_verify(report)


def test_it_refuses_illegal_transitions_with_a_reason(region, task, client_for):
    wang, li = region.specialist, region.specialist2
    with pytest.raises(ReadingError) as unclaimed:
        report_save(task=task, user=wang, findings="x", impression="")
    assert unclaimed.value.code == "claim_required"

    claimed(task, wang)
    with pytest.raises(ClaimHeld):
        report_save(task=task, user=li, findings="x", impression="")
    empty = report_save(task=task, user=wang, findings="  ", impression="")
    with pytest.raises(ReadingError) as nothing:
        report_sign(report=empty, user=wang)
    assert nothing.value.code == "empty_report"
    report_mark_preliminary(report=empty, user=wang)
    with pytest.raises(ReadingError) as twice:
        report_mark_preliminary(report=empty, user=wang)
    assert twice.value.code == "not_draft"

    # Over HTTP the API answers 409 with the reason and the holder.
    api = client_for(li).post(
        f"/api/worklist/{task.uuid}/report/",
        {"findings": "x", "impression": "y", "action": "sign"},
        content_type="application/json",
    )
    assert api.status_code == 409
    assert api.json()["error"] == "claim_held"
    assert api.json()["holder"] == "王主任"
    page = client_for(li).post(
        f"/read/{task.study.study_instance_uid}/report/", {"findings": "x", "action": "save"}
    )
    assert page.status_code == 409
    assert "王主任" in page.content.decode()


def test_it_lets_only_the_pools_readers_write(region, task, client_for):
    outsider = client_for(region.outsider)
    response = outsider.post(
        f"/api/worklist/{task.uuid}/report/", {"findings": "x"}, content_type="application/json"
    )
    assert response.status_code == 404
    assert (
        outsider.post(
            f"/read/{task.study.study_instance_uid}/report/", {"findings": "x"}
        ).status_code
        == 404
    )
    clinic = client_for(region.clinic_doctor)
    assert clinic.post(f"/api/worklist/{task.uuid}/claim/").status_code == 404
    assert not Report.objects.exists()


def test_it_writes_and_signs_through_the_api(region, task, client_for):
    wang = client_for(region.specialist)
    assert wang.post(f"/api/worklist/{task.uuid}/claim/").status_code == 200
    template = ReportTemplate.objects.filter(modality="CT").first()

    saved = wang.post(
        f"/api/worklist/{task.uuid}/report/",
        {"findings": FINDINGS, "impression": IMPRESSION, "template": str(template.uuid)},
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    assert saved.json()["state"] == "draft"
    with TestCase.captureOnCommitCallbacks(execute=True):
        signed = wang.post(
            f"/api/worklist/{task.uuid}/report/",
            {"findings": FINDINGS, "impression": IMPRESSION, "action": "sign"},
            content_type="application/json",
        )
    assert signed.status_code == 200, signed.content
    body = signed.json()
    assert body["state"] == "final"
    assert body["signature_valid"] is True
    assert body["signed_by"] == "王主任"
    assert body["pdf_url"] == f"/reports/{body['uuid']}/pdf/"
    assert Report.objects.get(uuid=body["uuid"]).template == template


def test_it_adds_an_addendum_to_a_final_report(region, task, client_for):
    wang = region.specialist
    report = signed_report(task, wang)
    claimed(task, wang)

    with pytest.raises(ReadingError) as wrong:
        report_mark_preliminary(report=report, user=wang)
    assert wrong.value.code in {"not_draft", "addendum_preliminary"}
    addendum = report_addendum_save(
        report=report, user=wang, findings="补充：右肺上叶小结节，约4mm。", impression="建议复查。"
    )
    assert addendum.amends == report
    assert addendum.state == Report.State.DRAFT
    with pytest.raises(ReadingError) as prelim:
        report_mark_preliminary(report=addendum, user=wang)
    assert prelim.value.code == "addendum_preliminary"
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_sign(report=addendum, user=wang)
    addendum.refresh_from_db()
    assert addendum.state == Report.State.FINAL
    assert report_verify(addendum)
    report.refresh_from_db()
    assert report.findings == FINDINGS
    assert report_verify(report)

    page = client_for(region.clinic_doctor).get(f"/reports/{report.uuid}/").content.decode()
    assert "右肺上叶小结节" in page
    assert FINDINGS in page
    # The addendum's own address leads to its report.
    moved = client_for(region.clinic_doctor).get(f"/reports/{addendum.uuid}/")
    assert moved.status_code == 302
    assert moved["Location"] == f"/reports/{report.uuid}/#addendum-{addendum.uuid}"


def test_it_shows_the_report_to_the_clinic_and_nobody_else(region, task, client_for):
    report = signed_report(task, region.specialist)
    url = f"/reports/{report.uuid}/"

    page = client_for(region.clinic_doctor).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert PATIENT_DISPLAY in html
    assert IMPRESSION in html
    assert f"/viewer/{task.study.study_instance_uid}/" in html
    assert 'data-signature="valid"' in html
    assert client_for(region.specialist2).get(url).status_code == 200
    for stranger in (region.outsider, region.other_clinic_doctor, region.centre_specialist):
        client = client_for(stranger)
        assert client.get(url).status_code == 404
        assert client.get(f"{url}pdf/").status_code == 404
        assert client.get(f"/api/reports/{report.uuid}/").status_code == 404


def test_it_keeps_drafts_from_the_clinic(region, task, client_for):
    claimed(task, region.specialist)
    draft = report_save(task=task, user=region.specialist, findings="草稿", impression="")

    assert client_for(region.clinic_doctor).get(f"/reports/{draft.uuid}/").status_code == 404
    assert client_for(region.specialist2).get(f"/reports/{draft.uuid}/").status_code == 200
    report_mark_preliminary(report=draft, user=region.specialist)
    assert client_for(region.clinic_doctor).get(f"/reports/{draft.uuid}/").status_code == 200


def test_it_audits_every_opening_of_a_report_without_names(region, task, client_for):
    report = signed_report(task, region.specialist)
    client = client_for(region.clinic_doctor)

    client.get(f"/reports/{report.uuid}/")
    client.get(f"/reports/{report.uuid}/pdf/")
    client.get(f"/api/reports/{report.uuid}/")

    reads = AuditEvent.objects.filter(action="report.read", actor=region.clinic_doctor).order_by(
        "id"
    )
    assert [r.detail["format"] for r in reads] == ["html", "pdf", "json"]
    for row in reads:
        assert row.study_uid == task.study.study_instance_uid
        assert row.patient_ref == str(task.study.patient.uuid)
        assert row.object_id == str(report.uuid)
    for row in AuditEvent.objects.all():
        text = f"{row.detail} {row.object_id} {row.patient_ref} {row.institution_name}"
        assert "王" not in text.replace(region["county"].name, "")
        assert task.study.patient.patient_id not in str(row.detail)


def test_it_renders_the_reading_page_with_templates_and_the_viewer_link(region, task, client_for):
    client = client_for(region.specialist)
    page = client.get(f"/read/{task.study.study_instance_uid}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert PATIENT_DISPLAY in html
    assert f"/viewer/{task.study.study_instance_uid}/" in html
    assert "胸部CT平扫（正常）" in html  # the template picker offers the CT templates
    assert AuditEvent.objects.filter(
        action="reading.open", study_uid=task.study.study_instance_uid
    ).exists()

    client.post(f"/read/{task.study.study_instance_uid}/claim/")
    template = ReportTemplate.objects.get(name="胸部CT平扫（正常）")
    prefilled = client.get(
        f"/read/{task.study.study_instance_uid}/", {"template": str(template.uuid)}
    )
    assert template.impression in prefilled.content.decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        signed = client.post(
            f"/read/{task.study.study_instance_uid}/report/",
            {"findings": template.findings, "impression": template.impression, "action": "sign"},
        )
    assert signed.status_code == 302
    assert Report.objects.get(study=task.study).state == Report.State.FINAL
