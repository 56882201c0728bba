"""The diagnostic viewer's page: one study, read in the browser.

The page carries no patient data: only the study's UID, the address of the
hub's DICOMweb service, and the user-visible strings the JavaScript needs
(translated here, so the modules hold no text). Everything about the images
comes from /dicom-web/, as any DICOMweb client would read it.

A study the user may not see is a 404 like an unknown UID, so the page never
confirms that another institution's study exists. Opening it is audited.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from regional_cloud.audit import audit
from regional_cloud.permissions import filter_by_permission
from studies.dicomweb.read_audit import opening_started
from studies.models import Instance, Study

VIEW_STUDY = "studies.view_study"

# Window presets (PS3.3 C.11.2.1.2 centre/width, in modality units: HU for CT).
PRESETS = [
    ("lung", -600, 1500),
    ("mediastinum", 40, 400),
    ("bone", 400, 1800),
    ("brain", 40, 80),
    ("abdomen", 40, 350),
]


def viewer_strings() -> dict[str, str]:
    """Return the texts the viewer's modules show, in the request's language.

    ``{name}`` placeholders are filled in by the JavaScript.
    """
    return {
        "loading": _("Loading…"),
        "load_failed": _("The images could not be loaded."),
        "frame_failed": _("This image could not be loaded."),
        "no_images": _("This study holds no images."),
        "series_label": _("Series {number}"),
        "images_count": _("{count} images"),
        "image_of": _("Image {index} / {total}"),
        "frame_of": _("Frame {index} / {total}"),
        "location": _("Location {value} mm"),
        "thickness": _("Thickness {value} mm"),
        "window_level": _("W {width} L {center}"),
        "zoom": _("Zoom {value}×"),
        "lossy": _("Lossy compressed"),
        "rendered": _("Server-rendered image (no window/level)"),
        "prefetch": _("Loaded {loaded} / {total}"),
        "prior": _("Prior"),
        "no_priors": _("No prior studies you may see."),
        "age_years": _("{value} y"),
        "sex_M": _("Male"),
        "sex_F": _("Female"),
        "sex_O": _("Other"),
        "length_mm": _("{value} mm"),
        "length_px": _("{value} px (no pixel spacing)"),
        "angle": _("{value}°"),
        "roi_mean": _("Mean {mean} SD {sd} {unit}"),
        "roi_area": _("Area {value} mm²"),
        "roi_area_px": _("Area {value} px²"),
        "roi_color": _("Mean R {r} G {g} B {b}"),
        "hu": _("HU"),
        "tags_title": _("DICOM tags"),
        "tags_search": _("Search tags"),
        "tag": _("Tag"),
        "tag_name": _("Name"),
        "tag_vr": _("VR"),
        "tag_value": _("Value"),
        "bulk_data": _("(binary data, not shown)"),
        "items": _("{count} item(s)"),
        "no_tags": _("No tag matches."),
        "close": _("Close"),
        "empty_viewport": _("Choose a series on the left."),
    }


def viewer_presets() -> list[dict[str, Any]]:
    labels = {
        "lung": _("Lung"),
        "mediastinum": _("Mediastinum"),
        "bone": _("Bone"),
        "brain": _("Brain"),
        "abdomen": _("Abdomen"),
    }
    return [
        {"key": key, "label": labels[key], "center": center, "width": width}
        for key, center, width in PRESETS
    ]


def _first_image(study: Study) -> tuple[str, str]:
    """Return the series and SOP Instance UIDs of the image the viewer opens with.

    The first image of the first series that has images, in the order QIDO and
    WADO answer. Sent with the page, so the viewer asks for that frame at once,
    alongside its metadata, instead of after the series' metadata.
    """
    first = (
        Instance.objects.filter(study=study, rows__isnull=False)
        .order_by(
            F("series__series_number").asc(nulls_last=True),
            "series_id",
            F("instance_number").asc(nulls_last=True),
            "pk",
        )
        .values_list("series__series_instance_uid", "sop_instance_uid")
        .first()
    )
    return first or ("", "")


@require_safe
@login_required
def viewer_page(request: HttpRequest, study_uid: str) -> HttpResponse:
    """GET /viewer/<StudyInstanceUID>/: the viewer, if the user may see the study."""
    visible = filter_by_permission(
        Study.objects.select_related("patient", "origin"), request.user, VIEW_STUDY
    )
    study = get_object_or_404(visible, study_instance_uid=study_uid)
    audit(
        action="study.view",
        actor=request.user,
        institution=study.origin,
        object_type="study",
        object_id=study.uuid,
        patient_ref=study.patient.uuid,
        study_uid=study.study_instance_uid,
        request=request,
        detail={"via": "viewer"},
    )
    # A new opening: its first image reads are audited again (studies.dicomweb.read_audit).
    opening_started(request.user, study.study_instance_uid)
    first_series, first_instance = _first_image(study)
    config = {
        "studyUid": study.study_instance_uid,
        "firstSeriesUid": first_series,
        "firstInstanceUid": first_instance,
        "dicomweb": reverse("dicomweb-studies").removesuffix("/studies"),
        "presets": viewer_presets(),
    }
    # Rendered without the request: the page needs none of the site's navigation,
    # and skipping its context processors saves queries before the first image.
    html = render_to_string(
        "viewer/viewer.html",
        {"config": config, "strings": viewer_strings(), "study_uid": study.study_instance_uid},
    )
    return HttpResponse(html)
