"""The demo region: one referral centre, three county hospitals, twelve clinics, a bureau.

Everything is created through the services, keyed by stable codes, so running
the demo again finds what exists and creates nothing twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from hospitals.models import Alliance, EdgeNode, HRScope, Institution, Region, Role, Tier
from hospitals.services import edge_node_create, institution_create, membership_grant

REGION_CODE = "yunzhou"
# The agent version the demo's simulated heartbeats carry (see simulate_edge_heartbeats);
# every edge table shows it beside the edge's name. Earlier demos wrote "demo".
SIMULATED_AGENT_VERSION = "demo: simulated"
EARLIER_SIMULATED_VERSIONS = ("demo",)
SIMULATED_BEAT = timedelta(minutes=1)
REGION_NAME = "云州市"
CENTRE = ("city-centre", "云州市中心医院区域影像中心", "Yunzhou Central Hospital Imaging Centre")
BUREAU = ("yunzhou-bureau", "云州市卫生健康委员会", "Yunzhou Health Commission")
# county code, names, and its four clinics (code, name)
COUNTIES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "county-hospital",
        "青溪县人民医院",
        "Qingxi County People's Hospital",
        [
            ("dongshan-clinic", "东山镇卫生院"),
            ("xishan-clinic", "西山乡卫生院"),
            ("nanhu-clinic", "南湖镇卫生院"),
            ("beiling-clinic", "北岭乡卫生院"),
        ],
    ),
    (
        "fenglin-county",
        "枫林县人民医院",
        "Fenglin County People's Hospital",
        [
            ("fenglin-town-clinic", "枫林镇中心卫生院"),
            ("shiqiao-clinic", "石桥镇卫生院"),
            ("hexi-community", "河西社区卫生服务中心"),
            ("taoyuan-clinic", "桃源乡卫生院"),
        ],
    ),
    (
        "baishi-county",
        "白石县人民医院",
        "Baishi County People's Hospital",
        [
            ("baishi-town-clinic", "白石镇卫生院"),
            ("longtan-clinic", "龙潭乡卫生院"),
            ("qingshan-clinic", "青山镇卫生院"),
            ("chengguan-community", "城关社区卫生服务中心"),
        ],
    ),
]


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    institution: str
    role: str
    staff: bool = False


DEMO_USERS = [
    DemoUser("dongshan_doctor", "陈医生", "dongshan-clinic", Role.CLINIC_DOCTOR),
    DemoUser("dongshan_tech", "林技师", "dongshan-clinic", Role.TECHNICIAN),
    DemoUser("xishan_doctor", "郑医生", "xishan-clinic", Role.CLINIC_DOCTOR),
    DemoUser("county_radiologist", "王主任", "county-hospital", Role.SPECIALIST),
    DemoUser("county_radiologist2", "李医师", "county-hospital", Role.SPECIALIST),
    DemoUser("fenglin_radiologist", "赵医师", "fenglin-county", Role.SPECIALIST),
    DemoUser("centre_expert", "周教授", "city-centre", Role.SPECIALIST),
    DemoUser("county_admin", "孙管理员", "county-hospital", Role.INSTITUTION_ADMIN),
    DemoUser("bureau_analyst", "吴分析员", "yunzhou-bureau", Role.BUREAU_ANALYST),
    DemoUser("region_admin", "钱管理员", "yunzhou-bureau", Role.REGIONAL_ADMIN, staff=True),
]


@transaction.atomic
def seed_network() -> Region:
    """Create (or find) the demo region, its institutions, users and edge nodes."""
    region, _created = Region.objects.get_or_create(
        code=REGION_CODE, defaults={"name": REGION_NAME}
    )
    alliance, _ = Alliance.objects.get_or_create(
        region=region, name="云州市医联体", defaults={"kind": Alliance.Kind.ALLIANCE}
    )
    centre = _institution(
        region,
        CENTRE,
        tier=Tier.REFERRAL_CENTRE,
        grade="3",
        hr_scope=HRScope.PROVINCE,
        alliances=[alliance],
    )
    _institution(region, BUREAU, tier=Tier.HEALTH_BUREAU, grade="")
    for code, name, name_en, clinics in COUNTIES:
        community, _ = Alliance.objects.get_or_create(
            region=region, name=f"{name[:3]}医共体", defaults={"kind": Alliance.Kind.COMMUNITY}
        )
        county = _institution(
            region,
            (code, name, name_en),
            tier=Tier.COUNTY_HOSPITAL,
            grade="2",
            hub=centre,
            hr_scope=HRScope.CITY,
            alliances=[alliance, community],
        )
        for clinic_code, clinic_name in clinics:
            _institution(
                region,
                (clinic_code, clinic_name, ""),
                tier=Tier.TOWNSHIP_CLINIC,
                grade="1",
                hub=county,
                alliances=[community],
            )
    for institution in Institution.objects.filter(region=region).exclude(tier=Tier.HEALTH_BUREAU):
        if not EdgeNode.objects.filter(institution=institution).exists():
            edge_node_create(institution=institution, name="orthanc-1")
    for demo_user in DEMO_USERS:
        _user(demo_user)
    return region


def _institution(
    region: Region, names: tuple[str, str, str], *, tier: str, grade: str, **kwargs: Any
) -> Institution:
    code, name, name_en = names
    existing = Institution.objects.filter(code=code).first()
    if existing is not None:
        return existing
    hr_scope = kwargs.pop("hr_scope", "")
    return institution_create(
        region=region,
        code=code,
        name=name,
        name_en=name_en,
        tier=tier,
        grade=grade,
        hr_scope=hr_scope,
        hr_valid_from=date(2024, 1, 1) if hr_scope else None,
        hr_valid_until=date(2027, 12, 31) if hr_scope else None,
        **kwargs,
    )


def _user(demo_user: DemoUser) -> Any:
    user_model = get_user_model()
    user = user_model.objects.filter(username=demo_user.username).first()
    if user is None:
        user = user_model.objects.create_user(
            username=demo_user.username,
            password=settings.DEMO_PASSWORD,
            first_name=demo_user.first_name,
            is_staff=demo_user.staff,
            is_superuser=demo_user.staff,
        )
    institution = Institution.objects.get(code=demo_user.institution)
    membership_grant(user=user, institution=institution, role=demo_user.role)
    return user


def simulate_edge_heartbeats() -> int:
    """Report the demo's edges as just heard from, marked as simulated (demo only).

    No Orthanc or agent runs behind the demo's edge nodes. Rather than show them
    all silent, the hub reports their heartbeats itself, with the agent version
    ``SIMULATED_AGENT_VERSION``, and every page that shows edge health says so;
    ``keep_simulated_edges_alive`` repeats the report while the demo is in use.
    An edge a real agent has reported from (another version) is left alone.
    """
    from hospitals.services import edge_node_heartbeat

    edges = EdgeNode.objects.filter(
        institution__region__code=REGION_CODE,
        is_active=True,
        agent_version__in=["", SIMULATED_AGENT_VERSION, *EARLIER_SIMULATED_VERSIONS],
    ).select_related("institution")
    for index, edge in enumerate(edges.order_by("pk")):
        # One clinic lags behind, so the network view shows what a backlog looks like.
        backlog, lag = (7, 1500) if edge.institution.code == "longtan-clinic" else (0, index % 5)
        edge_node_heartbeat(
            edge_node=edge, backlog=backlog, lag_seconds=lag, version=SIMULATED_AGENT_VERSION
        )
    return edges.count()


def keep_simulated_edges_alive(region: Region | None = None) -> int:
    """Repeat the simulated heartbeat of the simulated edges (of ``region``, else of all),
    for those not beaten within the last minute; one UPDATE. Backlog and lag stay as
    the seed set them."""
    now = timezone.now()
    edges = EdgeNode.objects.filter(
        is_active=True,
        agent_version=SIMULATED_AGENT_VERSION,
        last_contact_at__lt=now - SIMULATED_BEAT,
    )
    if region is not None:
        edges = edges.filter(institution__region=region)
    return edges.update(last_contact_at=now)


_last_beat = -SIMULATED_BEAT.total_seconds()  # this process's last beat, time.monotonic()


def beat_simulated_edges_on_request(**kwargs: Any) -> None:
    """``request_started``: the embedded demo has no task worker to beat on a schedule, so
    the first request of each minute (per process) does it, for every page that shows
    edge health. With a task worker (no eager tasks) nothing happens here."""
    global _last_beat
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return
    now = time.monotonic()
    if now - _last_beat < SIMULATED_BEAT.total_seconds():
        return
    _last_beat = now
    keep_simulated_edges_alive()
