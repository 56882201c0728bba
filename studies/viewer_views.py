"""The diagnostic viewer's page: one study, read in the browser.

The page carries no patient data: only the study's UID, the address of the
hub's DICOMweb service, and the user-visible strings the JavaScript needs
(translated here, so the modules hold no text). Everything about the images
comes from /dicom-web/, as any DICOMweb client would read it.

A study the user may not see is a 404 like an unknown UID, so the page never
confirms that another institution's study exists. Opening it is audited.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from regional_cloud.audit import audit
from regional_cloud.permissions import filter_by_permission
from studies.dicom_parse import NATIVE_SYNTAXES
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


def _values(metadata: dict[str, Any], tag: str) -> list[Any]:
    return list((metadata.get(tag) or {}).get("Value") or [])


def _number(metadata: dict[str, Any], tag: str, default: float) -> float:
    values = _values(metadata, tag)
    try:
        return float(values[0]) if values else default
    except (TypeError, ValueError):
        return default


def _aspect(metadata: dict[str, Any]) -> float:
    """Return a pixel's height over its width, as stack.js reads the spacing."""
    for tag in ("00280030", "00181164"):  # Pixel Spacing, Imager Pixel Spacing: row\\column
        spacing = _values(metadata, tag)
        try:
            row, column = float(spacing[0]), float(spacing[1])
        except (IndexError, TypeError, ValueError):
            continue
        if row > 0 and column > 0:
            return row / column
    regions = _values(metadata, "00186011")  # ultrasound regions, units 3 = cm
    if regions and isinstance(regions[0], dict):
        region = regions[0]
        if _number(region, "00186024", 0) == 3 and _number(region, "00186026", 0) == 3:
            dx, dy = _number(region, "0018602C", 0), _number(region, "0018602E", 0)
            if dx > 0 and dy > 0:
                return dy / dx
    return 1.0


def first_pixel_description(metadata: dict[str, Any], native: bool) -> dict[str, Any] | None:
    """Return what the page's first paint needs to draw frame 1, or None if it cannot.

    Only the pixel description (size, bit depth, rescale, stored window,
    aspect): no patient data, so the page still carries none. The frames
    resource sends every grey image as little-endian values and decodes
    compressed colour to interleaved RGB; other images wait for the viewer.
    """
    rows, columns = int(_number(metadata, "00280010", 0)), int(_number(metadata, "00280011", 0))
    samples = int(_number(metadata, "00280002", 1))
    bits = int(_number(metadata, "00280100", 16))
    photometric = str((_values(metadata, "00280004") or ["MONOCHROME2"])[0]).upper()
    planar = int(_number(metadata, "00280006", 0))
    if rows <= 0 or columns <= 0:
        return None
    if samples == 1 and photometric.startswith("MONOCHROME") and bits in (8, 16):
        kind = "gray"
    elif samples == 3 and bits == 8 and (not native or (photometric == "RGB" and planar == 0)):
        kind = "rgb"
    else:
        return None
    centers, widths = _values(metadata, "00281050"), _values(metadata, "00281051")
    window = None
    try:
        if centers and widths and float(widths[0]) > 0:
            window = {"center": float(centers[0]), "width": float(widths[0])}
    except (TypeError, ValueError):
        window = None
    return {
        "kind": kind,
        "rows": rows,
        "columns": columns,
        "samples": samples,
        "bitsAllocated": bits,
        "signed": _number(metadata, "00280103", 0) == 1,
        "photometric": photometric,
        "slope": _number(metadata, "00281053", 1) or 1,
        "intercept": _number(metadata, "00281052", 0),
        "window": window,
        "aspect": _aspect(metadata),
    }


def _first_image(study: Study) -> tuple[str, str, dict[str, Any] | None]:
    """Return the series and SOP Instance UIDs of the image the viewer opens with.

    The first image of the first series that has images, in the order QIDO and
    WADO answer, and its pixel description. Sent with the page, so the page
    asks for that frame before anything else and draws it on its own.
    """
    first = (
        Instance.objects.filter(study=study, rows__isnull=False)
        .order_by(
            F("series__series_number").asc(nulls_last=True),
            "series_id",
            F("instance_number").asc(nulls_last=True),
            "pk",
        )
        .values_list(
            "series__series_instance_uid", "sop_instance_uid", "metadata", "transfer_syntax_uid"
        )
        .first()
    )
    if first is None:
        return "", "", None
    series_uid, sop_uid, metadata, syntax = first
    return series_uid, sop_uid, first_pixel_description(metadata, syntax in NATIVE_SYNTAXES)


@lru_cache(maxsize=4)
def _inlined_static_cached(name: str, closing: str) -> str:
    return _read_inlined_static(name, closing)


def _read_inlined_static(name: str, closing: str) -> str:
    path = finders.find(name)
    if not path:
        raise ImproperlyConfigured(f"static/{name} is missing")
    text = Path(str(path)).read_text(encoding="utf-8")
    if closing in text.lower():
        raise ImproperlyConfigured(f"{name} must not contain {closing}")
    return text


def inlined_static(name: str, closing: str) -> str:
    """Return a static file the page inlines (read once; each time under DEBUG).

    ``closing`` (``</script`` or ``</style``) must not occur in it, or it would
    end the element it is inlined into.
    """
    if settings.DEBUG:
        return _read_inlined_static(name, closing)
    return _inlined_static_cached(name, closing)


def first_paint_script() -> str:
    """Return the first-paint script the page inlines."""
    return inlined_static("viewer/first-paint.js", "</script")


def viewer_style() -> str:
    """Return the viewer's style sheet, inlined so that laying the page out (which
    the first image waits for) needs no request of its own."""
    return inlined_static("css/viewer.css", "</style")


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
    first_series, first_instance, first_pixel = _first_image(study)
    config = {
        "studyUid": study.study_instance_uid,
        "firstSeriesUid": first_series,
        "firstInstanceUid": first_instance,
        "firstPixel": first_pixel,
        "recognitionScript": static("js/recognition-panel.js"),
        "viewerModule": static("viewer/viewer.js"),
        "dicomweb": reverse("dicomweb-studies").removesuffix("/studies"),
        "presets": viewer_presets(),
    }
    # Rendered without the request: the page needs none of the site's navigation,
    # and skipping its context processors saves queries before the first image.
    html = render_to_string(
        "viewer/viewer.html",
        {
            "config": config,
            "strings": viewer_strings(),
            "study_uid": study.study_instance_uid,
            "first_paint_script": mark_safe(first_paint_script()),  # noqa: S308 - our own file
            "viewer_style": mark_safe(viewer_style()),  # noqa: S308 - our own file
        },
    )
    response = HttpResponse(html)
    # Per user and audited: never kept by a cache, nor shown again from history.
    response["Cache-Control"] = "no-store"
    if first_instance:
        # The browser asks for it as soon as the headers arrive, before it has parsed
        # the page and queued its scripts on the same few connections; first-paint.js's
        # fetch of the same URL takes the answer. The frame when first-paint.js can
        # draw it (it asks for the metadata once the frame is in); else the metadata,
        # which the viewer's modules need first.
        frame_url, metadata_url = first_image_urls(config)
        urls = [frame_url] if first_pixel else [metadata_url]
        response["Link"] = ", ".join(
            f"<{url}>; rel=preload; as=fetch; crossorigin=use-credentials" for url in urls
        )
    return response


def first_image_urls(config: dict[str, Any]) -> list[str]:
    """Return the first image's frame and metadata URLs, as first-paint.js builds them."""
    base = "/".join(
        [
            config["dicomweb"],
            "studies",
            quote(config["studyUid"], safe=""),
            "series",
            quote(config["firstSeriesUid"], safe=""),
            "instances",
            quote(config["firstInstanceUid"], safe=""),
        ]
    )
    return [f"{base}/frames/1", f"{base}/metadata"]
