"""A specialist reads a clinic's study in the viewer, in a real Chromium.

The canvas is read back pixel by pixel: an image is drawn, scrolling and
window/level change it, a length is measured in mm, the tag browser and the
overlays show the Chinese name, layouts and the prior study show side by
side, and ultrasound shows in colour.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from hospitals.models import Role
from studies.access import study_access_grant
from studies.models import Study
from studies.synthetic import PatientSpec, ct_study, demo_patients, us_study
from studies.synthetic.ct import FIELD_OF_VIEW_MM
from tests.dicomweb_helpers import ingest
from tests.factories import make_network, make_user
from tests.fixtures.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 40
SIZE = 256
VP = '[data-viewport="{}"]'

CANVAS_STATS = """(selector) => {
  const canvas = document.querySelector(selector + " canvas");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, squares = 0, colour = 0, checksum = 0;
  const n = data.length / 4;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    const grey = (r + g + b) / 3;
    sum += grey; squares += grey * grey;
    if (Math.max(Math.abs(r - g), Math.abs(g - b), Math.abs(r - b)) > 24) colour++;
    checksum = (checksum * 31 + r + 7 * g + 13 * b) % 1000000007;
  }
  const mean = sum / n;
  return {mean, variance: squares / n - mean * mean, colour: colour / n, checksum};
}"""


def canvas_stats(page: Any, viewport: int = 0) -> dict[str, float]:
    stats: dict[str, float] = page.evaluate(CANVAS_STATS, VP.format(viewport))
    return stats


def drawn(page: Any, viewport: int, index: int) -> None:
    """Wait until viewport `viewport` has drawn slice `index`."""
    page.locator(f'{VP.format(viewport)}[data-drawn-index="{index}"]').wait_for()


def log_in(page: Any, base: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    page.context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


def open_viewer(page: Any, base: str, study: Study) -> None:
    page.goto(f"{base}/viewer/{study.study_instance_uid}/")
    page.wait_for_function("window.__viewerStats && window.__viewerStats.firstImageMs !== null")
    # The first image comes alone; then the series' metadata makes it a stack.
    page.wait_for_function("window.__viewerStats.stackMs !== null")
    drawn(page, 0, 0)
    page.wait_for_function(
        "sel => !document.querySelector(sel).innerText.includes('…')",
        arg=f"{VP.format(0)} .vp-bl",
    )


def markers(page: Any, viewport: int = 0) -> dict[str, str]:
    return {
        side: page.locator(f'{VP.format(viewport)} [data-overlay="{side}"]').inner_text()
        for side in ("top", "bottom", "left", "right")
    }


def canvas_box(page: Any, viewport: int = 0) -> dict[str, float]:
    box: dict[str, float] = page.locator(f"{VP.format(viewport)} canvas").bounding_box()
    return box


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


@pytest.fixture(autouse=True)
def _quiet_before_flush(live_hub: str, page: Any) -> Iterator[None]:
    """Stop the viewer's prefetching before the test database is flushed.

    A frame request still running on the live server while the tables are
    truncated can deadlock the flush.
    """
    yield
    page.goto("about:blank")
    time.sleep(0.5)


@pytest.fixture
def reading() -> dict[str, Any]:
    """A clinic's CT (and an older one) for one patient, readable by a county specialist."""
    network = make_network()
    network["county"].name = "青山县人民医院"
    network["county"].save(update_fields=["name"])
    sender = make_user(institution=network["clinic"], role=Role.TECHNICIAN)
    reader = make_user(
        institution=network["county"], role=Role.SPECIALIST, first_name="明", last_name="李"
    )
    patient: PatientSpec = demo_patients()[0]
    ingest(
        *ct_study(patient, slices=SLICES, size=SIZE, study_date=date(2025, 3, 14)),
        user=sender,
        institution=network["clinic"],
    )
    ingest(
        *ct_study(patient, slices=12, size=128, seed=7, study_date=date(2023, 9, 2)),
        user=sender,
        institution=network["clinic"],
    )
    studies = list(Study.objects.order_by("-study_date"))
    for study in studies:
        study_access_grant(
            study=study,
            grantee=reader,
            codenames=["view_study"],
            source="routing",
            source_ref="test",
        )
    return {
        "network": network,
        "sender": sender,
        "reader": reader,
        "patient": patient,
        "study": studies[0],
        "prior": studies[1],
    }


def test_it_shows_scrolls_windows_and_measures_a_ct(
    page: Any, live_hub: str, reading: dict[str, Any]
) -> None:
    patient = reading["patient"]
    log_in(page, live_hub, reading["reader"])
    open_viewer(page, live_hub, reading["study"])

    first = canvas_stats(page)
    assert first["variance"] > 100, first  # an image, not a blank canvas
    overlay = page.locator(VP.format(0)).inner_text()
    assert patient.full_name in overlay
    assert f"1 / {SLICES}" in overlay
    # Axial, head first supine: the patient's left on the right of the screen.
    assert markers(page) == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    page.locator('[data-action="rotate"]').click()
    page.wait_for_function(
        "sel => document.querySelector(sel).innerText === 'R'", arg=f"{VP.format(0)} .vp-top"
    )
    assert markers(page) == {"top": "R", "bottom": "L", "left": "P", "right": "A"}
    page.locator('[data-action="flip-h"]').click()
    page.wait_for_function(
        "sel => document.querySelector(sel).innerText === 'A'", arg=f"{VP.format(0)} .vp-left"
    )
    assert markers(page) == {"top": "R", "bottom": "L", "left": "A", "right": "P"}
    page.locator('[data-action="reset"]').click()
    page.wait_for_function(
        "sel => document.querySelector(sel).innerText === 'A'", arg=f"{VP.format(0)} .vp-top"
    )
    assert patient.full_name in page.get_by_test_id("patient-banner").inner_text()
    screenshot(page, "viewer-ct-first-image", full_page=False)

    # The wheel scrolls: the slice index and the picture change.
    box = canvas_box(page)
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    for _ in range(SLICES // 2):
        page.mouse.wheel(0, 100)
    drawn(page, 0, SLICES // 2)
    middle = canvas_stats(page)
    assert middle["checksum"] != first["checksum"]
    assert f"{SLICES // 2 + 1} / {SLICES}" in page.locator(VP.format(0)).inner_text()

    # Keys: End, Home, arrows.
    page.keyboard.press("End")
    drawn(page, 0, SLICES - 1)
    page.keyboard.press("Home")
    drawn(page, 0, 0)
    page.keyboard.press("ArrowDown")
    drawn(page, 0, 1)
    for _ in range(SLICES // 2 - 1):
        page.keyboard.press("PageDown")
    drawn(page, 0, SLICES - 1)
    page.keyboard.press("Home")
    for _ in range(SLICES // 2):
        page.keyboard.press("ArrowDown")
    drawn(page, 0, SLICES // 2)
    assert canvas_stats(page)["checksum"] == middle["checksum"]

    # Window/level: a drag changes the grey levels, so does a preset.
    wl_before = page.locator(f'{VP.format(0)} [data-overlay="br"]').inner_text()
    drag(page, centre, (centre[0] + 120, centre[1] + 60))
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).innerText !== text",
        arg=[f'{VP.format(0)} [data-overlay="br"]', wl_before],
    )
    dragged = canvas_stats(page)
    assert dragged["checksum"] != middle["checksum"]
    page.select_option("#vw-preset", "lung")
    page.wait_for_function(
        "sel => document.querySelector(sel).innerText.includes('1500')",
        arg=f'{VP.format(0)} [data-overlay="br"]',
    )
    lung = canvas_stats(page)
    assert lung["checksum"] not in (dragged["checksum"], middle["checksum"])
    screenshot(page, "viewer-ct-lung-window", full_page=False)

    # A length across 200 screen pixels: the image fills the shorter side of the canvas.
    page.locator('[data-tool="length"]').click()
    drag(page, (centre[0] - 100, centre[1] + 30), (centre[0] + 100, centre[1] + 30))
    page.wait_for_function("window.__viewerStats.lastMeasurement !== null")
    measurement = page.evaluate("window.__viewerStats.lastMeasurement")
    spacing = round(FIELD_OF_VIEW_MM / SIZE, 4)
    screen_per_pixel = min(box["width"], box["height"]) / SIZE
    expected = 200 / screen_per_pixel * spacing
    assert measurement["type"] == "length"
    assert measurement["unit"] == "mm"
    assert measurement["spacing"] == [spacing, spacing]
    assert math.isclose(measurement["value"], expected, rel_tol=0.02), (measurement, expected)
    assert "mm" in measurement["labels"][0]

    # An ellipse over the patient's side: a mean and SD in HU.
    page.locator('[data-tool="ellipse"]').click()
    drag(page, (centre[0] - 30, centre[1] - 30), (centre[0] + 30, centre[1] + 10))
    page.wait_for_function("window.__viewerStats.lastMeasurement.type === 'ellipse'")
    roi = page.evaluate("window.__viewerStats.lastMeasurement")
    assert roi["unit"] == "HU"
    assert -1100 < roi["value"] < 2000
    screenshot(page, "viewer-ct-measurements", full_page=False)

    # The tag browser, searched for the patient's name, shows it in Chinese.
    page.locator('[data-action="tags"]').click()
    browser_panel = page.get_by_test_id("tag-browser")
    browser_panel.locator("input[type=search]").fill("PatientName")
    row = browser_panel.locator('tr[data-tag="00100010"]')
    row.wait_for()
    assert patient.family_name in row.inner_text()
    assert patient.given_name in row.inner_text()
    screenshot(page, "viewer-ct-tags", full_page=False)


def test_the_page_draws_the_first_image_before_the_viewer_arrives(
    page: Any, live_hub: str, reading: dict[str, Any]
) -> None:
    """first-paint.js draws the first frame as the viewer will; viewport 0 takes it over."""
    log_in(page, live_hub, reading["reader"])
    held: list[Any] = []
    # The viewer's module waits until released.
    page.route("**/static/viewer/viewer.js", lambda route: held.append(route))
    page.goto(f"{live_hub}/viewer/{reading['study'].study_instance_uid}/", wait_until="commit")
    page.wait_for_function("window.__viewerStats && window.__viewerStats.firstImageMs !== null")
    assert page.evaluate("window.__viewerStats.viewerDrawnMs") is None
    early = page.evaluate(CANVAS_STATS, ".vp-first")
    assert early["variance"] > 100, early  # the image, not a blank canvas
    # The bar and the side panel were kept out of layout until the image was on screen;
    # first-paint.js shows them itself, without the viewer's modules.
    page.wait_for_function("!document.documentElement.classList.contains('vw-early')")
    assert page.locator('[data-tool="window"]').is_visible()
    assert page.locator('[data-testid="series-list"]').count() == 1
    screenshot(page, "viewer-first-paint", full_page=False)

    while not held:
        page.wait_for_timeout(50)
    held[0].continue_()
    page.wait_for_function("window.__viewerStats.viewerDrawnMs !== null")
    drawn(page, 0, 0)
    assert page.locator(".vp-first").count() == 0
    assert page.locator(".vp").count() == 1
    # The viewer drew the same pixels into the same canvas, now with its overlays.
    assert canvas_stats(page)["checksum"] == early["checksum"]
    assert reading["patient"].full_name in page.locator(VP.format(0)).inner_text()
    # The recognition panel comes after the first image.
    page.locator("[data-recognition-panel][data-mounted]").wait_for()


def test_it_lays_out_two_viewports_and_the_prior_side_by_side(
    page: Any, live_hub: str, reading: dict[str, Any]
) -> None:
    log_in(page, live_hub, reading["reader"])
    open_viewer(page, live_hub, reading["study"])

    page.locator('[data-layout="1x2"]').click()
    assert page.locator(".vp").count() == 2
    drawn(page, 1, 0)
    assert canvas_stats(page, 1)["variance"] > 100
    page.locator('[data-layout="2x2"]').click()
    assert page.locator(".vp").count() == 4
    for viewport in range(4):
        drawn(page, viewport, 0)
    screenshot(page, "viewer-2x2", full_page=False)
    page.locator('[data-layout="1x1"]').click()
    assert page.locator(".vp").count() == 1

    # The patient's older CT is listed, and shown beside this one.
    prior = reading["prior"]
    prior_entry = page.locator(f'.vw-prior[data-study-uid="{prior.study_instance_uid}"]')
    prior_entry.wait_for()
    assert "2023-09-02" in prior_entry.inner_text()
    page.locator('[data-action="compare"]').click()
    page.locator(f'{VP.format(1)}[data-study-uid="{prior.study_instance_uid}"]').wait_for()
    drawn(page, 1, 0)
    assert page.locator(".vp").count() == 2
    assert page.locator(f"{VP.format(1)} .vp-badge").is_visible()
    assert "2023-09-02" in page.locator(VP.format(1)).inner_text()
    assert canvas_stats(page, 1)["variance"] > 100
    screenshot(page, "viewer-prior-side-by-side", full_page=False)


def test_it_shows_ultrasound_in_colour_and_plays_its_cine(
    page: Any, live_hub: str, reading: dict[str, Any]
) -> None:
    patient = demo_patients()[1]
    ingest(
        *us_study(patient, width=320, height=240, cine_frames=8),
        user=reading["sender"],
        institution=reading["network"]["clinic"],
    )
    study = Study.objects.get(modalities_in_study="US")
    study_access_grant(
        study=study, grantee=reading["reader"], codenames=["view_study"], source="routing"
    )
    log_in(page, live_hub, reading["reader"])
    open_viewer(page, live_hub, study)

    assert page.locator(VP.format(0)).get_attribute("data-kind") == "rgb"
    still = canvas_stats(page)
    assert still["colour"] > 0.001, still  # the colour of the calibration bar, the Doppler box
    assert "1 / 9" in page.locator(VP.format(0)).inner_text()
    screenshot(page, "viewer-us-colour", full_page=False)

    page.locator('[data-action="cine"]').click()
    page.wait_for_function(
        "sel => Number(document.querySelector(sel).dataset.drawnIndex) >= 3", arg=VP.format(0)
    )
    page.locator('[data-action="cine"]').click()
    assert (
        "Frame" in page.locator(VP.format(0)).inner_text()
        or "帧" in page.locator(VP.format(0)).inner_text()
    )
