"""Chest radiograph (Digital X-Ray Image IOD, For Presentation, PS3.3 A.26).

MONOCHROME2 with a LOG intensity relationship: the denser the body, the brighter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import DigitalXRayImageStorageForPresentation

from .common import (
    DEMO_INSTITUTION_NAME,
    StudySpec,
    base_dataset,
    code,
    resolve_study,
    set_pixels,
)
from .patients import PatientSpec

DETECTOR_MM = 430.0
VIEWS = ("PA", "LL")
# Row and column directions as the image is displayed (PS3.3 C.7.6.1.1.1).
_ORIENTATION = {"PA": ["L", "F"], "LL": ["P", "F"]}
# CID 4010 DX View.
_VIEW_CODES = {"PA": ("272479007", "postero-anterior"), "LL": ("399173006", "left lateral")}

Grid = npt.NDArray[np.floating[Any]]


def _soft(distance: Grid, edge: float = 0.06) -> Grid:
    """Return 1 inside (distance < 1), 0 outside, with a linear ramp instead of a hard edge."""
    return np.asarray(np.clip((1.0 - distance) / edge, 0.0, 1.0))


def _density(size: int, view: str) -> Grid:
    """Return the projected density of a chest in [0, 1] for a PA or left lateral view."""
    axis = ((np.arange(size) - (size - 1) / 2) * (DETECTOR_MM / size)).astype(np.float32)
    x, y = axis[None, :], axis[:, None]

    def ellipse(cx: float, cy: float, ax: float, ay: float) -> Grid:
        return np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)

    lateral = view == "LL"
    half_width = 120.0 if lateral else 165.0
    body = _soft(ellipse(0, 70, half_width, 260)) + _soft(ellipse(0, -170, 55, 60))
    inside = np.minimum(body, 1.0)
    density = 0.08 + 0.5 * inside
    if lateral:
        lungs = _soft(ellipse(5, -10, 85, 125), 0.15)
        heart = _soft(ellipse(-35, 60, 60, 60), 0.2)
        spine = _soft(np.abs(x - 85) / 20, 0.3)
    else:
        lungs = _soft(ellipse(-75, -10, 62, 125), 0.15) + _soft(ellipse(75, -10, 60, 120), 0.15)
        heart = _soft(ellipse(25, 60, 75, 60), 0.2)
        spine = _soft(np.abs(x) / 18, 0.3)
        # Posterior ribs: the same curve shifted down 24 mm per rib, one pass for all ten.
        u = np.abs(x)
        q = y - (-0.3 * u + 0.004 * u**2)
        phase = np.mod(q + 125, 24.0)
        ribs = np.clip(1 - np.abs(phase - 4.5) / 4.5, 0, 1) * ((q > -125) & (q < 115))
        density += 0.15 * ribs * ((u > 12) & (u < 140)) * inside
        clavicles = (np.abs(y + 0.25 * u + 130) < 6) & (u > 20) & (u < 130)
        density += 0.2 * clavicles * inside
    density -= 0.3 * np.minimum(lungs, 1.0)
    density += (0.15 * heart + 0.2 * spine) * inside
    return np.clip(density, 0.0, 1.0).astype(np.float32)


def dr_chest_study(
    patient: PatientSpec,
    *,
    size: int = 2048,
    bits_stored: int = 12,
    views: Sequence[str] = ("PA",),
    seed: int | None = 0,
    study_date: date | datetime | None = None,
    institution_name: str = DEMO_INSTITUTION_NAME,
    study: StudySpec | None = None,
) -> Iterator[Dataset]:
    """Yield one chest film per view ("PA", and "LL" for a left lateral), size x size pixels."""
    if not 10 <= bits_stored <= 16:
        raise ValueError("bits_stored must be between 10 and 16")
    if not views or any(view not in VIEWS for view in views):
        raise ValueError(f"views must be taken from {VIEWS}")
    spec = resolve_study(
        patient, "DX", study, seed=seed, study_date=study_date, institution_name=institution_name
    )
    spacing = round(DETECTOR_MM / size, 4)
    series_uid = spec.uid("dx-series", size)
    top = (1 << bits_stored) - 1
    for number, view in enumerate(views, start=1):
        rng = spec.rng("dx", size, view)
        density = _density(size, view)
        noise = rng.standard_normal((size, size), dtype=np.float32) * 0.012
        pixels = np.clip((density + noise) * top, 0, top).astype(np.uint16)
        ds = base_dataset(
            spec,
            sop_class_uid=DigitalXRayImageStorageForPresentation,
            sop_instance_uid=spec.uid("dx-image", size, view),
            series_uid=series_uid,
            series_number=1,
            series_description="胸部正位" if view == "PA" else "胸部侧位",
            instance_number=number,
            content_time=spec.at(30 * number),
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.BodyPartExamined = "CHEST"
        ds.AnatomicRegionSequence = [code("51185008", "SCT", "Chest")]
        ds.ImageLaterality = "U"
        ds.ViewPosition = view
        view_code, view_meaning = _VIEW_CODES[view]
        ds.ViewCodeSequence = [code(view_code, "SCT", view_meaning)]
        ds.PositionerType = ""
        ds.AcquisitionContextSequence = []
        ds.PatientOrientation = _ORIENTATION[view]
        ds.KVP = 120 if view == "PA" else 125
        ds.DistanceSourceToDetector = 1800
        ds.DetectorType = "SCINTILLATOR"
        ds.ImagerPixelSpacing = [spacing, spacing]
        ds.PixelSpacing = [spacing, spacing]
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
        ds.PresentationLUTShape = "IDENTITY"
        ds.WindowCenter, ds.WindowWidth = top // 2, top
        ds.BurnedInAnnotation = "NO"
        ds.LossyImageCompression = "00"
        set_pixels(ds, pixels, bits_stored=bits_stored)
        yield ds
