"""WADO-RS rendered resources and thumbnails (PS3.18 10.4.1.1.4, 8.3.5).

A frame becomes a consumer image in the order of PS3.3 C.11: Modality LUT
(rescale slope and intercept, or a Modality LUT Sequence), then VOI LUT (the
``window`` parameter, else the object's Window Center/Width, else its VOI LUT
Sequence, else the frame's own minimum and maximum), then MONOCHROME1
inverted. Colour (RGB; YBR decoded to RGB; palette colour through its LUTs)
is only scaled to 8 bits.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi

from studies.dicomweb.auth import dicomweb_view
from studies.dicomweb.frames import (
    PixelInfo,
    audit_read,
    frame_array,
    local_copy,
    parse_frame_list,
    pixel_info,
)
from studies.dicomweb.http import (
    DicomwebError,
    answers_errors,
    bad_request,
    not_acceptable,
    parse_accept,
)
from studies.dicomweb.read_audit import audit_image_read
from studies.models import Instance
from studies.selectors import access_instance_by_uid, access_series_by_uid, access_study_by_uid

RENDERED_TYPES = ("image/jpeg", "image/png")
DEFAULT_QUALITY = 90
THUMBNAIL_QUALITY = 75
THUMBNAIL_SIZE = (128, 128)
MAX_VIEWPORT = 4096
WINDOW_FUNCTIONS = {"linear", "linear_exact", "sigmoid"}


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class RenderOptions:
    media_type: str
    window: Window | None = None
    viewport: tuple[int, int] | None = None
    crop: tuple[int, int, int, int] | None = None
    quality: int = DEFAULT_QUALITY
    thumbnail: bool = False


def negotiate_image(request: HttpRequest) -> str:
    """Return image/jpeg (the default) or image/png for the Accept header, or raise 406."""
    for media_range in parse_accept(request.headers.get("Accept")):
        for candidate in RENDERED_TYPES:
            if media_range.matches(candidate):
                return candidate
    raise not_acceptable(_("Rendered images are available as image/jpeg or image/png."))


def _numbers(raw: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise bad_request(
            _("%(name)s takes numbers separated by commas.") % {"name": name}
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise bad_request(_("%(name)s takes finite numbers.") % {"name": name})
    return values


def parse_render_options(request: HttpRequest, *, thumbnail: bool = False) -> RenderOptions:
    """Read ``window``, ``viewport`` and ``quality`` (PS3.18 Table 8.3.5-1); 400 if malformed."""
    media_type = negotiate_image(request)
    params = request.GET
    window = None
    if params.get("window"):
        raw_window = params["window"].split(",")
        function = raw_window[2] if len(raw_window) == 3 else "linear"
        function = function.strip().lower().replace("-", "_")
        values = _numbers(",".join(raw_window[:2]), "window")
        if len(raw_window) not in (2, 3) or len(values) != 2 or function not in WINDOW_FUNCTIONS:
            raise bad_request(_("window is center,width[,linear|linear-exact|sigmoid]."))
        if values[1] <= 0 or (function == "linear" and values[1] < 1):
            raise bad_request(_("The window width must be at least 1."))
        window = Window(values[0], values[1], function)
    viewport, crop = None, None
    if params.get("viewport"):
        numbers = _numbers(params["viewport"], "viewport")
        if len(numbers) not in (2, 6) or not all(n == int(n) for n in numbers):
            raise bad_request(_("viewport is vw,vh or vw,vh,sx,sy,sw,sh in whole pixels."))
        vw, vh = int(numbers[0]), int(numbers[1])
        if not (0 < vw <= MAX_VIEWPORT and 0 < vh <= MAX_VIEWPORT):
            raise bad_request(
                _("The viewport must be 1 to %(max)d pixels each way.") % {"max": MAX_VIEWPORT}
            )
        viewport = (vw, vh)
        if len(numbers) == 6:
            sx, sy, sw, sh = (int(n) for n in numbers[2:])
            if sx < 0 or sy < 0 or sw <= 0 or sh <= 0:
                raise bad_request(_("The source region of viewport must be inside the image."))
            crop = (sx, sy, sw, sh)
    quality = THUMBNAIL_QUALITY if thumbnail else DEFAULT_QUALITY
    if params.get("quality"):
        raw_quality = params["quality"]
        if not raw_quality.isdigit() or not 1 <= int(raw_quality) <= 100:
            raise bad_request(_("quality is a whole number from 1 to 100."))
        quality = int(raw_quality)
    if thumbnail and viewport is None:
        viewport = THUMBNAIL_SIZE
    return RenderOptions(media_type, window, viewport, crop, quality, thumbnail)


# --- pixels to image -------------------------------------------------------------------


def header_dataset(instance: Instance) -> Dataset:
    """Return the attributes rendering needs, from the index; from the object if it must.

    Only LUT data too large for the cached metadata sends us to the object
    (read up to its pixel data); other bulk values are irrelevant here.
    """
    meta = instance.metadata
    if not any(_has_bulk(meta.get(tag)) for tag in LUT_TAGS):
        try:
            return Dataset.from_json(_without_bulk(meta))
        except Exception:  # noqa: S110 - an odd value: the object itself is the authority
            pass
    with local_copy(instance) as source:
        source.seek(0)
        return pydicom.dcmread(source, stop_before_pixels=True)


# Modality LUT Sequence, VOI LUT Sequence, palette colour LUT descriptors and data.
LUT_TAGS = frozenset(
    {"00283000", "00283010", "00281201", "00281202", "00281203", "00281221", "00281222", "00281223"}
)


def _has_bulk(value: Any) -> bool:
    if isinstance(value, dict):
        return "BulkDataURI" in value or any(_has_bulk(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bulk(v) for v in value)
    return False


def _without_bulk(dataset: dict[str, Any]) -> dict[str, Any]:
    """Return DICOM JSON without elements whose value is a BulkDataURI, at any depth."""
    out: dict[str, Any] = {}
    for tag, element in dataset.items():
        if not isinstance(element, dict) or "BulkDataURI" in element:
            continue
        if element.get("vr") == "SQ" and element.get("Value"):
            element = {**element, "Value": [_without_bulk(item) for item in element["Value"]]}
        out[tag] = element
    return out


def _first(value: Any) -> float:
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        value = value[0]
    return float(value)


def window_values(values: np.ndarray, window: Window) -> np.ndarray:
    """Apply a VOI window (PS3.3 C.11.2.1.2) to 0..255."""
    c, w = window.center, window.width
    if window.function == "sigmoid":
        return 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    out: np.ndarray
    if window.function == "linear_exact":
        out = ((values - c) / w + 0.5) * 255.0
    else:
        out = ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0 if w > 1 else (values >= c) * 255.0
    return np.clip(out, 0.0, 255.0)


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) * (255.0 / (high - low))


def _voi(values: np.ndarray, ds: Dataset, window: Window | None) -> np.ndarray:
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            function = str(ds.get("VOILUTFunction") or "LINEAR").lower()
            window = Window(
                _first(ds.WindowCenter),
                max(_first(ds.WindowWidth), 1.0),
                function if function in WINDOW_FUNCTIONS else "linear",
            )
        except (TypeError, ValueError, IndexError):
            window = None
    if window is not None:
        return window_values(values, window)
    if "VOILUTSequence" in ds:
        try:
            return _min_max(apply_voi(values, ds).astype(np.float64))
        except Exception:  # noqa: S110 - a broken LUT: fall back to the data's range
            pass
    return _min_max(values)


def _to_8_bits(array: np.ndarray, bits: int) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    top = float(2**bits - 1) if bits else float(array.max() or 1)
    return np.clip(array.astype(np.float64) * (255.0 / top), 0, 255).astype(np.uint8)


def to_image(array: np.ndarray, ds: Dataset, info: PixelInfo, window: Window | None) -> Image.Image:
    """Turn one decoded frame into an 8-bit greyscale or RGB image."""
    photometric = info.photometric
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(array, ds)
        bits = 16 if rgb.dtype != np.uint8 else 8
        return Image.fromarray(_to_8_bits(rgb, bits), "RGB")
    if info.samples == 3 or array.ndim == 3:
        # RGB, and YBR already converted to RGB when decoded.
        return Image.fromarray(_to_8_bits(array, info.bits_stored), "RGB")
    try:
        values: np.ndarray = np.asarray(apply_modality_lut(array, ds), dtype=np.float64)
    except Exception:
        values = array.astype(np.float64)
    grey = np.rint(_voi(values, ds, window)).astype(np.uint8)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, "L")


def _fit(image: Image.Image, options: RenderOptions) -> Image.Image:
    if options.crop is not None:
        sx, sy, sw, sh = options.crop
        if sx + sw > image.width or sy + sh > image.height:
            raise bad_request(_("The source region of viewport must be inside the image."))
        image = image.crop((sx, sy, sx + sw, sy + sh))
    if options.viewport is None:
        return image
    vw, vh = options.viewport
    scale = min(vw / image.width, vh / image.height)
    if options.thumbnail:
        scale = min(scale, 1.0)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, options: RenderOptions) -> bytes:
    buffer = io.BytesIO()
    if options.media_type == "image/png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=options.quality)
    return buffer.getvalue()


def render_instance(instance: Instance, number: int, options: RenderOptions) -> bytes:
    """Return frame ``number`` of ``instance`` rendered as ``options`` asks."""
    info = pixel_info(instance)
    if number > info.frames:
        raise DicomwebError(404, _("The instance has %(count)d frame(s).") % {"count": info.frames})
    array = frame_array(instance, info, number)
    image = to_image(array, header_dataset(instance), info, options.window)
    return encode(_fit(image, options), options)


def _image_response(
    request: HttpRequest, instance: Instance, number: int, *, thumbnail: bool
) -> HttpResponse:
    options = parse_render_options(request, thumbnail=thumbnail)
    data = render_instance(instance, number, options)
    if thumbnail:
        audit_read(request, instance, "study.thumbnail", frame=number)
    else:
        audit_image_read(request, instance, "study.rendered", frame=number)
    response = HttpResponse(data, content_type=options.media_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _single_frame(frame_list: str, instance: Instance) -> int:
    numbers = parse_frame_list(frame_list, pixel_info(instance).frames)
    if len(numbers) != 1:
        raise bad_request(_("A rendered frame is one frame; ask for each separately."))
    return numbers[0]


def representative_instance(instances: Any) -> Instance:
    """Return the middle image of the first series that has images, or 404."""
    images = instances.filter(rows__isnull=False).select_related("study__patient")
    first = images.order_by("series__series_number", "series_id").values("series_id").first()
    if first is None:
        raise DicomwebError(404, _("Nothing here holds an image."))
    series_images = images.filter(series_id=first["series_id"])
    count = series_images.count()
    ordered = series_images.order_by("instance_number", "pk")
    return ordered[count // 2]


# --- views -----------------------------------------------------------------------------


@dicomweb_view
@require_safe
@answers_errors
def instance_rendered(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    """GET .../instances/{sop}/rendered: the first frame as JPEG or PNG."""
    instance = access_instance_by_uid(request.user, study_uid, series_uid, sop_uid)
    return _image_response(request, instance, 1, thumbnail=False)


@dicomweb_view
@require_safe
@answers_errors
def frames_rendered(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponse:
    """GET .../frames/{n}/rendered."""
    instance = access_instance_by_uid(request.user, study_uid, series_uid, sop_uid)
    return _image_response(request, instance, _single_frame(frame_list, instance), thumbnail=False)


@dicomweb_view
@require_safe
@answers_errors
def study_thumbnail(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = access_study_by_uid(request.user, study_uid)
    return _image_response(request, representative_instance(study.instances), 1, thumbnail=True)


@dicomweb_view
@require_safe
@answers_errors
def series_thumbnail(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    series = access_series_by_uid(request.user, study_uid, series_uid)
    return _image_response(request, representative_instance(series.instances), 1, thumbnail=True)


@dicomweb_view
@require_safe
@answers_errors
def instance_thumbnail(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    instance = access_instance_by_uid(request.user, study_uid, series_uid, sop_uid)
    middle = pixel_info(instance).frames // 2 + 1
    return _image_response(request, instance, middle, thumbnail=True)


@dicomweb_view
@require_safe
@answers_errors
def frames_thumbnail(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponse:
    instance = access_instance_by_uid(request.user, study_uid, series_uid, sop_uid)
    return _image_response(request, instance, _single_frame(frame_list, instance), thumbnail=True)
