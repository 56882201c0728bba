"""Two doctors of two hospitals in one consultation room, in a real Chromium over daphne.

Chat both ways, the presenter's slice followed by the other, an annotation
seen by the other, a snapshot, a WebRTC call with Chromium's fake camera and
microphone (media peer to peer, signalling through the hub), and a dropped line
that comes back without losing a message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from hospitals.models import Role
from referrals.consultation.models import Annotation, ConsultationMessage
from referrals.consultation.services import consultation_accept, consultation_request
from studies.models import Study
from studies.synthetic import ct_study, demo_patients
from tests.dicomweb_helpers import ingest
from tests.factories import make_network, make_user
from tests.fixtures.browser import CHROMIUM_ARGS, chromium_path, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 20
MEDIA_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # Host candidates as plain loopback addresses, not mDNS names the sandbox cannot resolve.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
VP = '[data-viewport="0"]'


@pytest.fixture(scope="module")
def media_browser() -> Iterator[Any]:
    """A Chromium of this module's own, with fake media devices (the shared one has none)."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(
            executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *MEDIA_ARGS], headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def room(daphne_hub: str) -> dict[str, Any]:
    """A clinic doctor's consultation with a county specialist (lead), both accepted."""
    network = make_network()
    network["clinic"].name = "青石镇卫生院"
    network["clinic"].save(update_fields=["name"])
    network["county"].name = "青山县人民医院"
    network["county"].save(update_fields=["name"])
    technician = make_user(institution=network["clinic"], role=Role.TECHNICIAN)
    doctor = make_user(
        institution=network["clinic"], role=Role.CLINIC_DOCTOR, first_name="医生", last_name="陈"
    )
    specialist = make_user(
        institution=network["county"], role=Role.SPECIALIST, first_name="主任", last_name="王"
    )
    ingest(
        *ct_study(demo_patients()[0], slices=SLICES, size=128, study_date=date(2025, 3, 14)),
        user=technician,
        institution=network["clinic"],
    )
    study = Study.objects.get()
    consultation = consultation_request(
        actor=doctor, studies=[study], consultants=[specialist], question="右肺结节，请会诊"
    )
    consultation_accept(consultation=consultation, actor=specialist)
    return {"base": daphne_hub, "doctor": doctor, "specialist": specialist, "c": consultation}


def open_room(browser: Any, base: str, user: Any, consultation: Any) -> Any:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and print(f"[{user.username}] {m.text}"))
    page.goto(f"{base}/consultations/{consultation.uuid}/room/")
    page.wait_for_function("document.body.dataset.socket === 'open'")
    page.locator(f'{VP}[data-drawn-index="0"]').wait_for()
    return page


def say(page: Any, text: str) -> None:
    page.locator("#cs-text").fill(text)
    page.locator("#cs-text").press("Enter")


def delivered(page: Any) -> list[int]:
    seqs: list[int] = page.evaluate("window.__consult.room.stats.delivered")
    return seqs


def test_it_holds_a_consultation_between_two_browsers(media_browser, room):
    base, c = room["base"], room["c"]
    doctor = open_room(media_browser, base, room["doctor"], c)
    specialist = open_room(media_browser, base, room["specialist"], c)
    try:
        # Presence: each sees the other.
        doctor.locator(f'.cs-people [data-user-id="{room["specialist"].pk}"]').wait_for()
        specialist.locator(f'.cs-people [data-user-id="{room["doctor"].pk}"]').wait_for()

        # Chat both ways.
        say(doctor, "王主任您好，请看右肺上叶")
        specialist.locator(".cs-log", has_text="王主任您好，请看右肺上叶").wait_for()
        say(specialist, "看到了，结节边缘光整")
        doctor.locator(".cs-log", has_text="看到了，结节边缘光整").wait_for()

        # The specialist presents; the doctor's viewer follows the slice.
        specialist.locator('[data-action="present"]').click()
        doctor.wait_for_function(f"window.__consult.sync.presenter === {room['specialist'].pk}")
        for _ in range(7):
            specialist.locator(VP).hover()
            specialist.mouse.wheel(0, 100)
        specialist.locator(f'{VP}[data-slice-index="7"]').wait_for()
        doctor.locator(f'{VP}[data-slice-index="7"]').wait_for()

        # An arrow drawn by the specialist is seen by the doctor.
        specialist.locator('[data-tool="arrow"]').click()
        box = specialist.locator(f"{VP} canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        specialist.mouse.move(x - 80, y - 60)
        specialist.mouse.down()
        specialist.mouse.move(x, y, steps=6)
        specialist.mouse.up()
        doctor.wait_for_function("window.__consult.annotations.count() === 1")
        assert Annotation.objects.filter(consultation=c, kind="arrow").count() == 1

        # A snapshot of the viewer goes to the chat.
        specialist.locator('[data-action="snapshot"]').click()
        doctor.locator(".cs-log .cs-msg__snapshot").wait_for()
        doctor.wait_for_function(
            "document.querySelector('.cs-log .cs-msg__snapshot').naturalWidth > 0"
        )

        # Audio and video: peer to peer, signalled through the hub.
        doctor.locator('[data-action="call"]').click()
        specialist.locator('[data-action="call"]').click()
        connected = """() => {
            const states = window.__consult.call.states();
            return states.length === 1 && (states[0].connectionState === 'connected'
                || ['connected', 'completed'].includes(states[0].iceConnectionState));
        }"""
        doctor.wait_for_function(connected, timeout=30_000)
        specialist.wait_for_function(connected, timeout=30_000)
        doctor.wait_for_function(
            "document.querySelector('.cs-video--remote').videoWidth > 0", timeout=20_000
        )
        screenshot(specialist, "consultation-room-specialist", full_page=False)
        screenshot(doctor, "consultation-room-doctor", full_page=False)

        # The doctor hangs up and calls again, alone this time: the specialist,
        # still in the call, is asked to connect (or asks to be) and it connects.
        doctor.locator('[data-action="call"]').click()
        specialist.wait_for_function("window.__consult.call.states().length === 0")
        doctor.locator('[data-action="call"]').click()
        doctor.wait_for_function(connected, timeout=30_000)
        specialist.wait_for_function(connected, timeout=30_000)

        # The doctor's line drops; what is said meanwhile arrives once, in order.
        doctor.evaluate("window.__consult.room.drop()")
        doctor.locator('[data-testid="connection-banner"]').wait_for(state="visible")
        screenshot(doctor, "consultation-room-reconnecting", full_page=False)
        say(specialist, "断线期间的第一句")
        say(specialist, "断线期间的第二句")
        doctor.wait_for_function("document.body.dataset.socket === 'open'", timeout=20_000)
        doctor.locator(".cs-log", has_text="断线期间的第二句").wait_for()
        doctor.locator('[data-testid="connection-banner"]').wait_for(state="hidden")
        seqs = delivered(doctor)
        assert seqs == list(range(1, len(seqs) + 1))
        stored = list(
            ConsultationMessage.objects.filter(consultation=c)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        doctor.wait_for_function(f"window.__consult.room.lastSeq === {stored[-1]}")
        assert delivered(doctor) == stored
    finally:
        for page in (doctor, specialist):
            page.goto("about:blank")
            page.context.close()
        time.sleep(0.5)
