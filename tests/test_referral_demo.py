"""The demo holds referrals in every state, up and down, and recognition decisions of both kinds."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from referrals.demo import seed_referrals
from referrals.models import RecognitionDecision, Referral
from referrals.tasks import expire_referrals, revoke_due_grants
from regional_cloud.celery import app
from regional_cloud.demo.network import seed_network
from regional_cloud.demo.studies import seed_studies
from studies.models import Patient


@pytest.mark.django_db
def test_it_seeds_every_state_and_both_decisions_once(file_archive: Any) -> None:
    seed_network()
    seed_studies(log=lambda _line: None)
    lines: list[str] = []

    assert seed_referrals(log=lines.append) > 0
    assert seed_referrals(log=lines.append) == 0, "running twice creates nothing twice"

    states = set(Referral.objects.values_list("state", flat=True))
    assert states == set(Referral.State.values)
    assert set(Referral.objects.values_list("direction", flat=True)) == {"up", "down"}
    recognized = RecognitionDecision.objects.filter(decision="recognized")
    refused = RecognitionDecision.objects.filter(decision="not_recognized")
    assert recognized.exists()
    assert all(d.saving_yuan is not None for d in recognized)
    assert refused.exists()
    assert all(d.reasons for d in refused)
    zhang = Patient.objects.filter(patient_name="张^三")
    assert zhang.count() == 2
    assert len({p.person_id for p in zhang}) == 1, "张三's two records are linked"
    liu = Patient.objects.get(issuer__code="xishan-clinic", patient_id="100023")
    assert liu.person_id is None, "the same PatientID elsewhere is someone else"


def test_the_housekeeping_tasks_are_registered_for_beat() -> None:
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry
    assert expire_referrals.name == "referrals.tasks.expire_referrals"
    assert revoke_due_grants.name == "referrals.tasks.revoke_due_grants"


@pytest.mark.django_db
def test_the_tasks_run_with_nothing_due() -> None:
    assert expire_referrals.apply().get() == 0
    assert revoke_due_grants.apply().get() == 0
