"""Demo referrals in every state, up and down, and recognition decisions of both kinds.

``seed_referrals()`` runs after the demo network and studies exist
(``regional_cloud.demo``). Everything goes through the services, as a doctor's
clicks would; each referral is keyed by its sender, patient and clinical
question, so running the demo again creates nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from hospitals.models import Institution, Region
from referrals import services
from referrals.models import (
    ExamPrice,
    QualityStatus,
    RecognitionDecision,
    Referral,
    ReferralPolicy,
    Urgency,
)
from referrals.recognition import (
    RecognitionError,
    recognition_decide,
    recognition_rule_seed,
    study_quality_set,
)
from referrals.selectors import visible_referrals
from studies.identity import patient_link_by_national_id
from studies.models import Patient, Study
from studies.synthetic import demo_patients

REGION_CODE = "yunzhou"
State = Referral.State

# Yuan per exam (modality, body part or "" for any): the demo's price table.
PRICES: list[tuple[str, str, str]] = [
    ("CT", "", "320.00"),
    ("CT", "CHEST", "280.00"),
    ("MR", "", "600.00"),
    ("DX", "", "70.00"),
    ("DR", "", "70.00"),
    ("CR", "", "60.00"),
    ("US", "", "120.00"),
    ("ECG", "", "30.00"),
]
POLICIES = [  # urgency, answer within (minutes), look-back days, grace hours
    (Urgency.EMERGENCY, 30, 365, 72),
    (Urgency.URGENT, 24 * 60, 365, 72),
    (Urgency.ROUTINE, 72 * 60, 365, 72),
]


@dataclass(frozen=True)
class DemoReferral:
    sender: str  # username
    patient: tuple[str, str]  # (issuer code, PatientID)
    to: str  # institution code
    direction: str
    question: str
    steps: list[tuple[str, str]]  # (transition, username)
    urgency: str = Urgency.ROUTINE
    skip_reason: str = ""
    summary: str = ""
    plan: str = ""
    note: dict[str, str] = field(default_factory=dict)


REFERRALS = [
    DemoReferral(
        "dongshan_doctor",
        ("dongshan-clinic", "100023"),
        "county-hospital",
        "up",
        "胸片示右下肺斑片影，咳嗽发热一周，请上级医院进一步CT检查及治疗。",
        [
            ("submit", "dongshan_doctor"),
            ("accept", "county_radiologist"),
            ("schedule", "county_radiologist"),
            ("arrive", "county_radiologist"),
            ("complete", "county_radiologist"),
        ],
    ),
    DemoReferral(
        "county_radiologist",
        ("county-hospital", "ZY20240311"),
        "dongshan-clinic",
        "down",
        "右下肺炎治疗后转回社区随访。",
        [("submit", "county_radiologist"), ("accept", "dongshan_doctor")],
        summary="右下肺炎，住院抗感染治疗10天，复查CT示病灶明显吸收，体温正常。",
        plan="社区随访：口服抗生素3天；1个月后复查胸片；如再发热、咳嗽加重及时转诊。",
    ),
    DemoReferral(
        "dongshan_doctor",
        ("dongshan-clinic", "100024"),
        "county-hospital",
        "up",
        "甲状腺结节，超声TI-RADS 4a类，请专科评估是否穿刺。",
        [
            ("submit", "dongshan_doctor"),
            ("accept", "county_radiologist"),
            ("schedule", "county_radiologist"),
        ],
    ),
    DemoReferral(
        "dongshan_doctor",
        ("dongshan-clinic", "100031"),
        "county-hospital",
        "up",
        "心电图示ST段压低，活动后胸闷，请心内科会诊。",
        [
            ("submit", "dongshan_doctor"),
            ("accept", "county_radiologist2"),
            ("arrive", "county_radiologist2"),
        ],
        urgency=Urgency.URGENT,
    ),
    DemoReferral(
        "dongshan_doctor",
        ("dongshan-clinic", "100150"),
        "county-hospital",
        "up",
        "左腕外伤后肿痛，平片疑舟状骨骨折，请骨科诊治。",
        [("submit", "dongshan_doctor")],
        urgency=Urgency.URGENT,
    ),
    DemoReferral(
        "dongshan_doctor",
        ("dongshan-clinic", "100150"),
        "city-centre",
        "up",
        "外伤后持续腕部剧痛伴麻木，需急诊手外科处理。",
        [("submit", "dongshan_doctor"), ("expire", "")],
        urgency=Urgency.EMERGENCY,
        skip_reason="县医院手外科医生外出，无法接诊。",
    ),
    DemoReferral(
        "xishan_doctor",
        ("xishan-clinic", "100023"),
        "county-hospital",
        "up",
        "胸片示左肺门影增浓，请进一步检查。",
        [("submit", "xishan_doctor"), ("reject", "county_radiologist2")],
        note={"reject": "请先完善血常规及CRP，复查胸片后再转诊。"},
    ),
    DemoReferral(
        "xishan_doctor",
        ("xishan-clinic", "100057"),
        "county-hospital",
        "up",
        "腹部超声示胆囊多发结石，请外科评估手术指征。",
        [("submit", "xishan_doctor"), ("cancel", "xishan_doctor")],
        note={"cancel": "患者选择暂行保守治疗。"},
    ),
    DemoReferral(
        "county_radiologist",
        ("county-hospital", "ZY20240415"),
        "xishan-clinic",
        "down",
        "腰椎间盘突出术后转回康复。",
        [],
        summary="L4/5椎间盘突出，行椎间孔镜髓核摘除术，术后下肢疼痛缓解。",
        plan="社区康复训练，避免弯腰负重；3个月后复查腰椎MR。",
    ),
    DemoReferral(
        "centre_expert",
        ("city-centre", "M0012345"),
        "county-hospital",
        "down",
        "右肺上叶结节术后转回县医院随访。",
        [
            ("submit", "centre_expert"),
            ("accept", "county_radiologist"),
            ("arrive", "county_radiologist"),
            ("complete", "county_radiologist"),
        ],
        summary="右肺上叶原位腺癌，胸腔镜楔形切除，切缘阴性，无需辅助治疗。",
        plan="术后第6、12个月复查胸部CT；戒烟。",
    ),
]

# (decider, institution, study of (issuer, PatientID, modality), decision, reasons, other text)
DECISIONS: list[tuple[str, str, tuple[str, str, str], str, list[str], str]] = [
    (
        "county_radiologist",
        "county-hospital",
        ("dongshan-clinic", "100023", "DX"),
        "recognized",
        [],
        "",
    ),
    (
        "dongshan_doctor",
        "dongshan-clinic",
        ("county-hospital", "ZY20240311", "CT"),
        "recognized",
        [],
        "",
    ),
    (
        "county_radiologist",
        "county-hospital",
        ("dongshan-clinic", "100024", "US"),
        "not_recognized",
        ["condition_changed", "other"],
        "结节较前增大，需重新测量并行弹性成像。",
    ),
    (
        "county_radiologist2",
        "county-hospital",
        ("dongshan-clinic", "100031", "ECG"),
        "not_recognized",
        ["values_change_quickly", "emergency"],
        "",
    ),
]
# Quality-control results set by the studies' own institutions: (setter, issuer, PatientID).
QUALITY = [
    ("dongshan_doctor", "dongshan-clinic", "100023"),
    ("dongshan_doctor", "dongshan-clinic", "100024"),
    ("county_radiologist", "county-hospital", "ZY20240311"),
]


def _user(username: str) -> Any:
    return get_user_model().objects.get(username=username)


def _patient(issuer: str, patient_id: str) -> Patient | None:
    return Patient.objects.filter(issuer__code=issuer, patient_id=patient_id).first()


def seed_rules(region: Region) -> None:
    """Give the region its recognition rule, exam prices and referral policies (idempotent)."""
    recognition_rule_seed(region=region)
    for modality, body_part, price in PRICES:
        ExamPrice.objects.get_or_create(
            region=region,
            modality=modality,
            body_part=body_part,
            defaults={"price_yuan": Decimal(price)},
        )
    for urgency, minutes, lookback, grace in POLICIES:
        ReferralPolicy.objects.get_or_create(
            region=region,
            urgency=urgency,
            defaults={
                "answer_within_minutes": minutes,
                "lookback_days": lookback,
                "grace_hours": grace,
            },
        )


def _link_demo_persons() -> None:
    """Link each demo person's records by their resident ID number (张三 at two institutions)."""
    for spec in demo_patients():
        patient = _patient(spec.issuer, spec.patient_id)
        if patient is not None and patient.person_id is None:
            others = [
                s
                for s in demo_patients()
                if s.national_id == spec.national_id and s.issuer != spec.issuer
            ]
            if others:
                patient_link_by_national_id(
                    patient=patient, national_id=spec.national_id, actor=None
                )


def _step(referral: Referral, action: str, actor: Any, note: str) -> Referral:
    steps: dict[str, Callable[[], Referral]] = {
        "submit": lambda: services.referral_submit(referral=referral, actor=actor),
        "accept": lambda: services.referral_accept(referral=referral, actor=actor),
        "reject": lambda: services.referral_reject(referral=referral, actor=actor, reason=note),
        "schedule": lambda: services.referral_schedule(
            referral=referral, actor=actor, when=timezone.now() + dt.timedelta(days=2)
        ),
        "arrive": lambda: services.referral_arrive(referral=referral, actor=actor),
        "complete": lambda: services.referral_complete(referral=referral, actor=actor, note=note),
        "cancel": lambda: services.referral_cancel(referral=referral, actor=actor, reason=note),
    }
    if action == "expire":
        # Nobody answered the emergency in time: its deadline is behind us.
        Referral.objects.filter(pk=referral.pk).update(
            answer_due_at=timezone.now() - dt.timedelta(minutes=1)
        )
        services.referrals_expire_due()
        return Referral.objects.get(pk=referral.pk)
    return steps[action]()


def _seed_referral(spec: DemoReferral) -> bool:
    sender = _user(spec.sender)
    patient = _patient(*spec.patient)
    if patient is None:
        return False
    from_institution = patient.issuer
    if Referral.objects.filter(
        from_institution=from_institution, patient=patient, clinical_question=spec.question
    ).exists():
        return False
    studies = list(Study.objects.filter(patient=patient))
    with transaction.atomic():
        referral = services.referral_create(
            actor=sender,
            from_institution=from_institution,
            to_institution=Institution.objects.get(code=spec.to),
            patient=patient,
            direction=spec.direction,
            studies=studies,
            urgency=spec.urgency,
            clinical_question=spec.question,
            skip_reason=spec.skip_reason,
            treatment_summary=spec.summary,
            follow_up_plan=spec.plan,
        )
        for action, username in spec.steps:
            actor = _user(username) if username else None
            referral = _step(referral, action, actor, spec.note.get(action, ""))
    return True


def _seed_quality() -> None:
    for username, issuer, patient_id in QUALITY:
        for study in Study.objects.filter(
            patient__issuer__code=issuer, patient__patient_id=patient_id
        ):
            if not QualityStatus.objects.filter(study=study).exists():
                study_quality_set(
                    study=study, status=QualityStatus.Status.PASSED, actor=_user(username)
                )


def _seed_decisions(log: Callable[[str], Any]) -> int:
    made = 0
    for username, code, (issuer, patient_id, modality), decision, reasons, text in DECISIONS:
        user = _user(username)
        institution = Institution.objects.get(code=code)
        study = Study.objects.filter(
            patient__issuer__code=issuer,
            patient__patient_id=patient_id,
            modalities_in_study__contains=modality,
        ).first()
        if (
            study is None
            or RecognitionDecision.objects.filter(
                study=study, institution=institution, decided_by=user
            ).exists()
        ):
            continue
        try:
            recognition_decide(
                study=study,
                actor=user,
                institution=institution,
                decision=decision,
                reasons=reasons,
                other_text=text,
                referral=visible_referrals(user).filter(studies=study).first(),
            )
        except RecognitionError as refused:
            # E.g. the demo studies have aged past their window: the rules say no.
            log(f"  recognition decision skipped: {refused.code}")
            continue
        made += 1
    return made


def seed_referrals(*, log: Callable[[str], Any] = print) -> int:
    """Create the demo referrals and recognition decisions not made yet; return how many."""
    region = Region.objects.filter(code=REGION_CODE).first()
    if region is None:
        log("  no demo region: seed the network first")
        return 0
    seed_rules(region)
    _link_demo_persons()
    _seed_quality()
    created = sum(1 for spec in REFERRALS if _seed_referral(spec))
    decisions = _seed_decisions(log)
    log(f"  referrals created: {created}; recognition decisions: {decisions}")
    return created + decisions
