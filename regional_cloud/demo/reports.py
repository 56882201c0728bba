"""Demo reports: the county radiologist has read two clinic studies, one with a critical result."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib.auth import get_user_model

from studies.models import ReadingTask, Report
from studies.reading.services import reading_task_claim, report_save, report_sign
from studies.synthetic import demo_patients, study_spec

# (issuer, PatientID, modality, study date as in demo/studies.py, findings, impression, critical)
DEMO_REPORTS = [
    (
        "dongshan-clinic",
        "100023",
        "DX",
        "2026-11-03",
        "胸廓对称，气管居中。双肺纹理清晰，右肺中野见一约1.5cm结节影，边界尚清。心影大小形态正常。"
        "双膈面光整，肋膈角锐利。",
        "右肺中野结节，建议胸部CT进一步检查。",
        False,
    ),
    (
        "dongshan-clinic",
        "100024",
        "US",
        "2026-11-10",
        "肝脏形态大小正常，包膜光整。胆囊壁毛糙，腔内见多发强回声伴声影，最大约2.1cm。"
        "胆总管内径约1.2cm，明显扩张。",
        "胆囊多发结石；胆总管扩张，考虑梗阻，请临床立即处理。",
        True,
    ),
]


def seed_reports(*, reader_username: str = "county_radiologist") -> int:
    """Sign the demo reports that are not signed yet; return how many were signed."""
    reader = get_user_model().objects.filter(username=reader_username).first()
    if reader is None:
        return 0
    patients = {(p.issuer, p.patient_id): p for p in demo_patients()}
    signed = 0
    for issuer, patient_id, modality, day, findings, impression, critical in DEMO_REPORTS:
        spec = study_spec(
            patients[(issuer, patient_id)], modality, study_date=date.fromisoformat(day)
        )
        task = ReadingTask.objects.filter(study__study_instance_uid=spec.study_uid).first()
        if task is None or Report.objects.filter(task=task, state=Report.State.FINAL).exists():
            continue
        signed += _sign(task, reader, findings, impression, critical)
    return signed


def _sign(task: ReadingTask, reader: Any, findings: str, impression: str, critical: bool) -> int:
    task = reading_task_claim(task=task, user=reader)
    report = report_save(
        task=task, user=reader, findings=findings, impression=impression, critical=critical
    )
    report_sign(report=report, user=reader)
    return 1
