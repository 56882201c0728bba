"""In a real Chromium: a clinic refers a patient up with images, the county accepts, reads,
decides recognition (互认 / 不互认), refers the patient back down with a plan, and the
clinic sees it; the clinic's open page follows along without a reload."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from hospitals.models import Alliance, Role
from referrals.models import ExamPrice, QualityStatus, RecognitionDecision, Referral
from referrals.recognition import recognition_rule_seed
from studies.access import study_access_revoke_due
from studies.identity import patient_link_by_national_id
from studies.models import RoutingRule
from tests.factories import PASSWORD, make_network, make_user
from tests.fixtures.browser import screenshot
from tests.referral_helpers import ingest_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NATIONAL_ID = "990101196803120017"


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()


@pytest.fixture
def scene(file_archive: Any) -> dict[str, Any]:
    network = make_network()
    names = {
        "centre": "市第一人民医院（区域影像中心）",
        "county": "青山县人民医院",
        "clinic": "石桥镇卫生院",
        "other_clinic": "河口镇卫生院",
        "bureau": "青山县卫健委",
    }
    for key, name in names.items():
        network[key].name = name
        network[key].save(update_fields=["name"])
    community = Alliance.objects.create(
        region=network["region"], name="青山县医共体", kind=Alliance.Kind.COMMUNITY
    )
    network["clinic"].alliances.add(community)
    network["county"].alliances.add(community)
    recognition_rule_seed(region=network["region"])
    # This region has the imaging centre read the clinic's films, so the county's
    # radiologists see them only through the referral (not as their reading pool).
    RoutingRule.objects.create(
        region=network["region"], origin=network["clinic"], reading_institution=network["centre"]
    )
    ExamPrice.objects.create(region=network["region"], modality="DX", price_yuan=Decimal("70"))
    chest = ingest_study(
        network["clinic"], "100023", patient_name="张^三", modality="DX", days_ago=3
    )
    echo = ingest_study(
        network["clinic"], "100023", patient_name="张^三", modality="US", days_ago=2
    )
    county_ct = ingest_study(network["county"], "ZY20240311", patient_name="张^三", modality="CT")
    for study in (chest, echo):
        QualityStatus.objects.create(study=study, status=QualityStatus.Status.PASSED)
    for study in (chest, county_ct):
        patient_link_by_national_id(patient=study.patient, national_id=NATIONAL_ID, actor=None)
    return {
        **network,
        "chest": chest,
        "echo": echo,
        "county_ct": county_ct,
        "doctor": make_user(
            institution=network["clinic"], role=Role.CLINIC_DOCTOR, first_name="陈医生"
        ),
        "specialist": make_user(
            institution=network["county"], role=Role.SPECIALIST, first_name="王主任"
        ),
    }


def panel(page: Any, study: Any) -> Any:
    return page.locator(
        f'section[data-recognition-panel][data-study-uid="{study.study_instance_uid}"]'
    )


def test_it_refers_up_accepts_decides_recognition_and_refers_back_down(
    make_page: Any, live_hub: str, scene: dict[str, Any]
) -> None:
    chest, echo, county_ct = scene["chest"], scene["echo"], scene["county_ct"]

    # The clinic doctor refers 张三 up with both studies.
    clinic = make_page()
    log_in(clinic, live_hub, scene["doctor"].username)
    clinic.locator('.main-nav [data-nav="referrals"]').click()
    clinic.get_by_test_id("new-referral").click()
    clinic.locator("#patient-q").fill("100023")
    clinic.locator("#patient-q").press("Enter")
    clinic.locator(f'tr[data-patient="{chest.patient.uuid}"] a').click()
    clinic.locator("#referral-form").wait_for()
    # The form's script hides the down-only fields once it has run.
    clinic.locator('[data-field="treatment_summary"]').wait_for(state="hidden")
    clinic.locator("select[name=to_institution]").select_option(str(scene["county"].uuid))
    for study in (chest, echo):
        clinic.locator(f'input[name=studies][value="{study.study_instance_uid}"]').check()
    clinic.locator("textarea[name=clinical_question]").fill(
        "咳嗽发热一周，胸片示右下肺斑片影，请进一步诊治。"
    )
    screenshot(clinic, "referral-create-up")
    clinic.get_by_test_id("send-referral").click()
    clinic.locator('[data-page="referral-detail"]').wait_for()
    up = Referral.objects.get(direction="up")
    assert clinic.locator("#referral-state [data-state]").get_attribute("data-state") == "submitted"

    # The county specialist finds it in the incoming queue; the studies are closed until accepted.
    county = make_page()
    log_in(county, live_hub, scene["specialist"].username)
    county.goto(f"{live_hub}/referrals/")
    county.locator(f'[data-section="incoming"] tr[data-referral="{up.uuid}"] a').click()
    county.get_by_test_id("studies-closed").wait_for()
    metadata = f"{live_hub}/dicom-web/studies/{chest.study_instance_uid}/metadata"
    assert county.request.get(metadata).status == 404, "before acceptance"
    county.locator('[data-action="accept"]').click()
    county.locator('[data-page="referral-detail"]').wait_for()
    assert county.request.get(metadata).status == 200, "accepted: the county reads the images"

    # The clinic's open page follows without a reload (the timeline polls every 10 s).
    clinic.locator(".rf-event--accepted").wait_for(timeout=25_000)
    assert clinic.locator("#referral-changed").is_visible()
    assert "王主任" in clinic.locator("#timeline").inner_text()

    # Recognition: 互认 for the chest film, 不互认 with a coded reason for the ultrasound.
    chest_panel, echo_panel = panel(county, chest), panel(county, echo)
    chest_panel.locator("[data-recognizable=yes]").wait_for()
    chest_panel.get_by_test_id("decision-recognized").check()
    assert chest_panel.locator(".rp-reasons").is_hidden(), "互认 needs no reason"
    chest_panel.get_by_test_id("save-decision").click()
    chest_panel.locator('li[data-decision="recognized"]').wait_for()
    assert "70" in chest_panel.locator(".rp-decisions").inner_text(), "the saving is shown"

    echo_panel.get_by_test_id("decision-not_recognized").check()
    echo_panel.get_by_test_id("reason-condition_changed").check()
    echo_panel.get_by_test_id("reason-other").check()
    echo_panel.get_by_test_id("other-text").fill("腹痛加重，需复查")
    echo_panel.get_by_test_id("save-decision").click()
    echo_panel.locator('li[data-decision="not_recognized"]').wait_for()
    screenshot(county, "referral-accepted-recognition")
    decisions = {d.study_id: d for d in RecognitionDecision.objects.all()}
    assert decisions[chest.pk].decision == "recognized"
    assert decisions[chest.pk].saving_yuan == Decimal("70.00")
    assert decisions[echo.pk].reasons == ["condition_changed", "other"]
    assert decisions[echo.pk].other_text == "腹痛加重，需复查"
    assert decisions[echo.pk].referral_id == up.pk

    # After treatment the county refers the patient back down with a plan.
    county.locator('[data-action="refer-down"]').click()
    county.locator("#referral-form").wait_for()
    assert county.locator("input[name=direction][value=down]").is_checked()
    county.locator("select[name=to_institution]").select_option(str(scene["clinic"].uuid))
    county.locator(f'input[name=studies][value="{county_ct.study_instance_uid}"]').check()
    county.locator("textarea[name=clinical_question]").fill("右下肺炎治疗后转回社区随访。")
    county.locator("textarea[name=treatment_summary]").fill(
        "抗感染治疗10天，复查CT示病灶明显吸收。"
    )
    county.locator("textarea[name=follow_up_plan]").fill("一个月后复查胸片；再发热及时转诊。")
    county.get_by_test_id("send-referral").click()
    county.locator('[data-page="referral-detail"]').wait_for()
    down = Referral.objects.get(direction="down")
    assert down.state == Referral.State.SUBMITTED

    # The clinic doctor sees it, with the plan, and takes the patient back.
    clinic.goto(f"{live_hub}/referrals/")
    clinic.locator(f'[data-section="incoming"] tr[data-referral="{down.uuid}"] a').click()
    assert "一个月后复查胸片" in clinic.get_by_test_id("follow-up-plan").inner_text()
    assert "病灶明显吸收" in clinic.get_by_test_id("treatment-summary").inner_text()
    clinic.locator('[data-action="accept"]').click()
    clinic.locator('[data-page="referral-detail"]').wait_for()
    panel(clinic, county_ct).locator(".rp").wait_for()
    screenshot(clinic, "referral-down-accepted-at-clinic")
    down.refresh_from_db()
    assert down.state == Referral.State.ACCEPTED

    # The up referral closes; after the grace period the county's access ends.
    county.goto(f"{live_hub}/referrals/{up.uuid}/")
    county.locator('[data-action="arrive"]').click()
    county.locator('[data-page="referral-detail"]').wait_for()
    county.locator('[data-action="complete"]').click()
    county.locator('[data-page="referral-detail"]').wait_for()
    assert county.request.get(metadata).status == 200, "within the grace period"
    study_access_revoke_due(now=timezone.now() + dt.timedelta(hours=73))
    assert county.request.get(metadata).status == 404, "access ended"
    county.reload()
    assert county.locator(f'section[data-study-uid="{chest.study_instance_uid}"]').count() == 0
    county.get_by_test_id("studies-ended").wait_for()
    screenshot(county, "referral-completed-access-ended")
