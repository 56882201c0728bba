"""The viewer's page: open for those who may see the study, absent for everyone else, audited."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from studies.access import study_access_grant
from studies.models import Study
from studies.synthetic import ct_study, demo_patients, us_study
from tests.dicomweb_helpers import ingest
from tests.factories import make_network, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study_setup() -> dict[str, Any]:
    """A clinic's CT study, its doctor (owner), a county reader (granted) and an outsider."""
    network = make_network()
    owner = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    reader = make_user(institution=network["county"], role=Role.SPECIALIST)
    outsider = make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR)
    patient = demo_patients()[0]
    ingest(*ct_study(patient, slices=3, size=64), user=owner, institution=network["clinic"])
    study = Study.objects.get()
    study_access_grant(
        study=study, grantee=reader, codenames=["view_study"], source="routing", source_ref="test"
    )
    return {
        "network": network,
        "study": study,
        "owner": owner,
        "reader": reader,
        "outsider": outsider,
        "patient": patient,
    }


def viewer_url(study_uid: str) -> str:
    return f"/viewer/{study_uid}/"


def json_block(html: str, element_id: str) -> Any:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, f"no {element_id} block"
    return json.loads(match.group(1))


@pytest.mark.parametrize("who", ["owner", "reader"])
def test_it_shows_the_viewer_to_those_who_may_see_the_study(
    study_setup: dict[str, Any], client_for: Any, who: str
) -> None:
    study = study_setup["study"]
    response = client_for(study_setup[who]).get(viewer_url(study.study_instance_uid))

    assert response.status_code == 200
    html = response.content.decode()
    config = json_block(html, "viewer-config")
    # first-paint.js loads the viewer's modules once the first image is drawn.
    assert config["viewerModule"] == "/static/viewer/viewer.js"
    assert '<script type="module"' not in html
    assert config["studyUid"] == study.study_instance_uid
    assert config["firstSeriesUid"] == study.series.get().series_instance_uid
    assert config["dicomweb"] == "/dicom-web"
    assert {p["key"] for p in config["presets"]} == {
        "lung",
        "mediastinum",
        "bone",
        "brain",
        "abdomen",
    }
    strings = json_block(html, "viewer-strings")
    assert strings["image_of"]
    assert all(isinstance(v, str) and v for v in strings.values())


def test_it_keeps_patient_data_out_of_the_page(
    study_setup: dict[str, Any], client_for: Any
) -> None:
    # The page is only the frame; names come from DICOMweb, so they stay out of caches and logs.
    patient = study_setup["patient"]
    study = study_setup["study"]
    html = client_for(study_setup["reader"]).get(viewer_url(study.study_instance_uid)).content
    text = html.decode()
    assert patient.family_name + patient.given_name not in text
    assert patient.patient_id not in text


def test_it_translates_the_viewer_strings_to_english(
    study_setup: dict[str, Any], client_for: Any
) -> None:
    client = client_for(study_setup["reader"])
    client.cookies["django_language"] = "en"
    html = client.get(viewer_url(study_setup["study"].study_instance_uid)).content.decode()
    assert json_block(html, "viewer-strings")["image_of"] == "Image {index} / {total}"
    assert '<html lang="en"' in html


def test_it_audits_the_opening(study_setup: dict[str, Any], client_for: Any) -> None:
    study = study_setup["study"]
    reader = study_setup["reader"]
    client_for(reader).get(viewer_url(study.study_instance_uid))

    event = AuditEvent.objects.get(action="study.view")
    assert event.actor == reader
    assert event.study_uid == study.study_instance_uid
    assert event.object_id == str(study.uuid)
    assert event.patient_ref == str(study.patient.uuid)
    assert event.detail == {"via": "viewer"}
    # References only: no name in the audit row.
    assert study_setup["patient"].family_name not in json.dumps(event.detail)


def test_it_answers_404_to_an_outsider_and_audits_nothing(
    study_setup: dict[str, Any], client_for: Any
) -> None:
    study = study_setup["study"]
    response = client_for(study_setup["outsider"]).get(viewer_url(study.study_instance_uid))
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="study.view").exists()


def test_it_answers_404_for_an_unknown_study(study_setup: dict[str, Any], client_for: Any) -> None:
    response = client_for(study_setup["reader"]).get(viewer_url("1.2.3.4.5.6.7.8.9"))
    assert response.status_code == 404


def test_it_sends_anonymous_visitors_to_log_in(study_setup: dict[str, Any]) -> None:
    uid = study_setup["study"].study_instance_uid
    response = Client().get(viewer_url(uid))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert f"next=/viewer/{uid}/" in response["Location"]
    assert not AuditEvent.objects.filter(action="study.view").exists()


def test_it_opens_first_the_first_series_with_images(
    study_setup: dict[str, Any], client_for: Any
) -> None:
    network = study_setup["network"]
    owner = study_setup["owner"]
    ingest(
        *us_study(demo_patients()[1], width=96, height=64),
        user=owner,
        institution=network["clinic"],
    )
    study = Study.objects.exclude(pk=study_setup["study"].pk).get()
    html = client_for(owner).get(viewer_url(study.study_instance_uid)).content.decode()
    assert json_block(html, "viewer-config")["firstSeriesUid"] == (
        study.series.get().series_instance_uid
    )


def test_it_asks_for_the_first_frame_with_the_page_and_describes_its_pixels(
    study_setup: dict[str, Any], client_for: Any
) -> None:
    study = study_setup["study"]
    response = client_for(study_setup["reader"]).get(viewer_url(study.study_instance_uid))
    html = response.content.decode()
    config = json_block(html, "viewer-config")
    first = study.instances.order_by("instance_number").first()
    assert config["firstInstanceUid"] == first.sop_instance_uid
    # What the first paint needs to draw it as the viewer would: no patient data.
    pixel = config["firstPixel"]
    assert pixel["kind"] == "gray"
    assert (pixel["rows"], pixel["columns"], pixel["bitsAllocated"]) == (64, 64, 16)
    assert pixel["signed"] is False  # unsigned 12-bit, HU = stored - 1024
    assert pixel["intercept"] == -1024
    assert pixel["window"] == {"center": 40, "width": 400}
    assert pixel["aspect"] == 1
    # The frame alone is preloaded from the headers, before the page is parsed (its
    # metadata is asked for once the frame is in).
    base = (
        f"/dicom-web/studies/{study.study_instance_uid}/series/"
        f"{first.series.series_instance_uid}/instances/{first.sop_instance_uid}"
    )
    assert response["Link"] == (
        f"<{base}/frames/1>; rel=preload; as=fetch; crossorigin=use-credentials"
    )
    # Until the first image is drawn the chrome is kept out of layout (viewer.css).
    assert 'class="vw-early"' in html[: html.index("<head>")]
    # ... and shown at once when scripts are off (nothing would take the class away).
    noscript = html[html.index("<noscript><style>") : html.index("</head>")]
    assert "content-visibility: visible" in noscript
    # The first-paint script is in the page itself, ahead of the (inlined) style sheet and
    # the modules; no modulepreload burst competes with the first frame for connections.
    assert html.index("__viewerEarly") < html.index("<style>")
    assert ".vw-grid" in html[html.index("<style>") : html.index("</style>")]
    assert "modulepreload" not in html
    assert response["Cache-Control"] == "no-store"


def test_a_page_without_a_first_paint_loads_the_viewer_itself(
    study_setup: dict[str, Any], client_for: Any, monkeypatch: Any
) -> None:
    from studies import viewer_views

    # An image first-paint.js cannot draw (palette colour, say): the viewer draws it.
    monkeypatch.setattr(viewer_views, "first_pixel_description", lambda *args: None)
    study = study_setup["study"]
    response = client_for(study_setup["reader"]).get(viewer_url(study.study_instance_uid))
    html = response.content.decode()
    assert json_block(html, "viewer-config")["firstPixel"] is None
    assert '<script type="module" src="/static/viewer/viewer.js"></script>' in html
    assert "vw-early" not in html[: html.index("<head>")]
    # The metadata is what the viewer needs first, so it is the one preloaded.
    assert response["Link"].endswith(
        "/metadata>; rel=preload; as=fetch; crossorigin=use-credentials"
    )


def test_it_leaves_images_it_cannot_draw_early_to_the_viewer(
    study_setup: dict[str, Any], client_for: Any
) -> None:
    from studies.viewer_views import first_pixel_description

    palette = {
        "00280010": {"vr": "US", "Value": [8]},
        "00280011": {"vr": "US", "Value": [8]},
        "00280002": {"vr": "US", "Value": [1]},
        "00280004": {"vr": "CS", "Value": ["PALETTE COLOR"]},
        "00280100": {"vr": "US", "Value": [8]},
    }
    assert first_pixel_description(palette, native=True) is None
    ybr_native = {**palette, "00280002": {"vr": "US", "Value": [3]}}
    ybr_native["00280004"] = {"vr": "CS", "Value": ["YBR_FULL_422"]}
    assert first_pixel_description(ybr_native, native=True) is None
    # Decoded on the server, compressed colour arrives as interleaved RGB.
    decoded = first_pixel_description(ybr_native, native=False)
    assert decoded is not None
    assert decoded["kind"] == "rgb"


def test_it_links_to_a_consultation_request_on_this_study(
    study_setup: dict[str, Any], client_for: Any
) -> None:
    study = study_setup["study"]
    client = client_for(study_setup["reader"])
    html = client.get(viewer_url(study.study_instance_uid)).content.decode()
    match = re.search(r'data-testid="request-consultation" href="([^"]+)"', html)
    assert match, "no consultation link"
    href = match.group(1).replace("&amp;", "&")
    assert href == f"/consultations/new/?study={study.study_instance_uid}"

    # The consultation page takes the study from there.
    page = client.get(href)
    assert page.status_code == 200
    assert [s.pk for s in page.context["studies"]] == [study.pk]
    # An outsider's link leads nowhere: the study is not theirs to see.
    assert client_for(study_setup["outsider"]).get(href).status_code == 404
