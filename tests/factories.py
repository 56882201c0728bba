"""Builders for test data. They go through the services, as production does."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from hospitals.models import Institution, Region, Role, Tier
from hospitals.services import institution_create, membership_grant

_seq = itertools.count(1)
PASSWORD = "test-pass-123"


def make_region(**kwargs: Any) -> Region:
    n = next(_seq)
    kwargs.setdefault("code", f"region-{n}")
    kwargs.setdefault("name", f"测试县{n}")
    return Region.objects.create(**kwargs)


def make_institution(
    *, region: Region | None = None, tier: str = Tier.TOWNSHIP_CLINIC, **kwargs: Any
) -> Institution:
    n = next(_seq)
    grade: dict[str, str] = {
        Tier.TOWNSHIP_CLINIC: "1",
        Tier.COUNTY_HOSPITAL: "2",
        Tier.REFERRAL_CENTRE: "3",
    }
    return institution_create(
        region=region or make_region(),
        code=kwargs.pop("code", f"inst-{n}"),
        name=kwargs.pop("name", f"测试机构{n}"),
        tier=tier,
        grade=kwargs.pop("grade", grade.get(tier, "")),
        **kwargs,
    )


def make_user(
    *, institution: Institution | None = None, role: str = Role.CLINIC_DOCTOR, **kwargs: Any
) -> Any:
    n = next(_seq)
    user = get_user_model().objects.create_user(
        username=kwargs.pop("username", f"user{n}"), password=PASSWORD, **kwargs
    )
    if institution is not None:
        membership_grant(user=user, institution=institution, role=role)
    return user


def make_network() -> dict[str, Any]:
    """A small region: centre <- county <- two clinics, a bureau, and an outsider region."""
    region = make_region()
    centre = make_institution(region=region, tier=Tier.REFERRAL_CENTRE)
    county = make_institution(region=region, tier=Tier.COUNTY_HOSPITAL, hub=centre)
    clinic = make_institution(region=region, tier=Tier.TOWNSHIP_CLINIC, hub=county)
    other_clinic = make_institution(region=region, tier=Tier.TOWNSHIP_CLINIC, hub=county)
    bureau = make_institution(region=region, tier=Tier.HEALTH_BUREAU)
    return {
        "region": region,
        "centre": centre,
        "county": county,
        "clinic": clinic,
        "other_clinic": other_clinic,
        "bureau": bureau,
    }
