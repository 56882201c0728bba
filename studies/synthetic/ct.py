"""Chest CT series of a phantom with a lung nodule (CT Image IOD, PS3.3 A.3).

Coordinates are patient LPS millimetres: +x toward the patient's left, +y posterior,
+z head. Image rows run along +x and columns along +y (axial, head-first supine).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from .common import DEMO_INSTITUTION_NAME, StudySpec, base_dataset, resolve_study, set_pixels
from .patients import PatientSpec

FIELD_OF_VIEW_MM = 350.0
SCAN_LENGTH_MM = 300.0
RESCALE_INTERCEPT = -1024
BITS_STORED = 12

AIR_HU, FAT_HU, SOFT_TISSUE_HU, HEART_HU = -1000, -90, 40, 45
LUNG_HU, NODULE_HU = -850, 30
VERTEBRA_HU, CORTEX_HU, RIB_HU = 700, 1000, 900

NODULE_CENTER_MM = (-75.0, -15.0)
"""In-plane centre of the nodule, in the patient's right lung; it is snapped to a pixel."""
NODULE_DIAMETER_MM = 15.0

_NOISE_HU = 10.0
_NOISE_PAD = 61

Grid = npt.NDArray[np.float32]


def ct_slice_thickness(slices: int) -> float:
    """Return the default slice thickness: the series then covers about 30 cm."""
    return round(SCAN_LENGTH_MM / slices, 3)


def ct_nodule_instances(slices: int = 120, slice_thickness: float | None = None) -> range:
    """Return the InstanceNumbers on which the nodule shows; its centre is slice slices//2."""
    thickness = slice_thickness or ct_slice_thickness(slices)
    # A slice shows the nodule when its distance to the centre is below the radius.
    reach = math.ceil(NODULE_DIAMETER_MM / 2 / thickness) - 1
    middle = slices // 2
    return range(max(middle - reach, 0) + 1, min(middle + reach, slices - 1) + 2)


def _lung_scale(t: float) -> float:
    # Lungs are widest at mid-chest and narrower toward apex (t=0) and base (t=1).
    return math.sqrt(max(0.0, 1.0 - ((t - 0.5) / 0.56) ** 2))


class _ChestPhantom:
    """Precomputes the anatomy once so a slice costs a few array operations."""

    def __init__(self, size: int, spacing: float, rng: np.random.Generator) -> None:
        self.origin = -(size - 1) / 2 * spacing
        axis = (self.origin + np.arange(size) * spacing).astype(np.float32)
        x, y = axis[None, :], axis[:, None]

        def ellipse(cx: float, cy: float, ax: float, ay: float) -> Grid:
            return np.asarray(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2, dtype=np.float32)

        soft = np.full((size, size), AIR_HU, dtype=np.int16)
        soft[ellipse(0, 0, 165, 120) <= 1] = FAT_HU
        inner = ellipse(0, 0, 155, 110) <= 1
        soft[inner] = SOFT_TISSUE_HU
        heart = ellipse(20, -20, 55, 45) <= 1
        soft[heart] = HEART_HU
        bone = np.zeros((size, size), dtype=bool)
        for cx, cy, ax, ay, hu in (
            (0, 70, 22, 20, CORTEX_HU),
            (0, 70, 19, 17, VERTEBRA_HU),
            (0, 97, 14, 12, RIB_HU),  # neural arch
            (0, 97, 8, 7, SOFT_TISSUE_HU),  # spinal canal
            (0, 114, 5, 8, RIB_HU),  # spinous process
            (0, -103, 14, 6, RIB_HU),  # sternum
        ):
            mask = ellipse(cx, cy, ax, ay) <= 1
            soft[mask] = hu
            bone |= mask
        # Ribs cut the plane obliquely: two alternating sets stand in for their travel.
        self.bases = []
        for phase in (0.0, 12.0):
            base, ribs = soft.copy(), np.zeros((size, size), dtype=bool)
            for angle in np.radians(np.array([35, 62, 90, 118, 145, 215, 242, 270, 298]) + phase):
                for side in (-1, 1):
                    rib_x, rib_y = side * 145 * math.cos(angle), 100 * math.sin(angle)
                    ribs |= ellipse(rib_x, rib_y, 6, 6) <= 1
            base[ribs] = RIB_HU
            self.bases.append((base, ribs))
        right = np.sqrt(ellipse(-70, -5, 55, 80))
        left = np.sqrt(ellipse(75, 0, 50, 78))
        allowed = inner & ~heart & ~bone & (ellipse(0, 0, 138, 93) <= 1)
        # One map: a pixel is lung when its normalised radius is below the slice's scale.
        self.lung_radius = np.where(allowed, np.minimum(right, left), np.inf).astype(np.float32)
        for _base, ribs in self.bases:
            # Ribs stay bone whatever the lung scale is.
            self.lung_radius[ribs] = np.inf
        col = round((NODULE_CENTER_MM[0] - self.origin) / spacing)
        row = round((NODULE_CENTER_MM[1] - self.origin) / spacing)
        self.nodule_pixel = (row, col)
        nodule_x, nodule_y = axis[col], axis[row]
        self.nodule_distance = np.sqrt((x - nodule_x) ** 2 + (y - nodule_y) ** 2)
        padded = size + _NOISE_PAD
        self.noise = np.round(rng.normal(0.0, _NOISE_HU, (padded, padded))).astype(np.int16)
        self.size = size

    def slice_hu(self, index: int, slices: int, thickness: float) -> npt.NDArray[np.int16]:
        """Return the HU image of slice `index` (0 = most superior)."""
        base, _ = self.bases[int(index * thickness // 10) % 2]
        hu = base.copy()
        hu[self.lung_radius <= _lung_scale(index / max(slices - 1, 1))] = LUNG_HU
        distance = abs(index - slices // 2) * thickness
        radius_sq = (NODULE_DIAMETER_MM / 2) ** 2 - distance**2
        if radius_sq > 0:
            hu[self.nodule_distance <= math.sqrt(radius_sq)] = NODULE_HU
        r0, c0 = (index * 17) % _NOISE_PAD, (index * 29) % _NOISE_PAD
        hu += self.noise[r0 : r0 + self.size, c0 : c0 + self.size]
        return hu


def ct_study(
    patient: PatientSpec,
    *,
    slices: int = 120,
    size: int = 512,
    slice_thickness: float | None = None,
    seed: int | None = 0,
    study_date: date | datetime | None = None,
    institution_name: str = DEMO_INSTITUTION_NAME,
    study: StudySpec | None = None,
) -> Iterator[Dataset]:
    """Yield an axial chest CT series, one slice at a time, superior to inferior.

    Pixels are unsigned 12-bit stored values; HU = stored - 1024 (RescaleIntercept).
    """
    if slices < 1 or size < 32:
        raise ValueError("a CT series needs at least one slice of at least 32x32 pixels")
    spec = resolve_study(
        patient, "CT", study, seed=seed, study_date=study_date, institution_name=institution_name
    )
    thickness = slice_thickness or ct_slice_thickness(slices)
    spacing = round(FIELD_OF_VIEW_MM / size, 4)
    phantom = _ChestPhantom(size, spacing, spec.rng("ct", size))
    series_uid = spec.uid("ct-series", slices, size)
    frame_uid = spec.uid("ct-frame-of-reference", slices, size)
    origin = round(phantom.origin, 4)
    low, high = 0, (1 << BITS_STORED) - 1
    for index in range(slices):
        hu = phantom.slice_hu(index, slices, thickness)
        stored = np.clip(hu.astype(np.int32) - RESCALE_INTERCEPT, low, high).astype(np.uint16)
        ds = _ct_dataset(spec, series_uid, frame_uid, index, slices)
        z = round(-index * thickness, 4)
        ds.ImagePositionPatient = [origin, origin, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.SliceThickness = thickness
        ds.PixelSpacing = [spacing, spacing]
        set_pixels(ds, stored, bits_stored=BITS_STORED)
        yield ds


def _ct_dataset(
    spec: StudySpec, series_uid: str, frame_uid: str, index: int, slices: int
) -> Dataset:
    ds = base_dataset(
        spec,
        sop_class_uid=CTImageStorage,
        sop_instance_uid=spec.uid("ct-slice", slices, index),
        series_uid=series_uid,
        series_number=2,
        series_description="胸部平扫 标准算法",
        instance_number=index + 1,
        content_time=spec.at(60 + index * 0.1),
    )
    attributes: dict[str, Any] = {
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "BodyPartExamined": "CHEST",
        "ProtocolName": "Chest routine",
        "PatientPosition": "HFS",
        "FrameOfReferenceUID": frame_uid,
        "PositionReferenceIndicator": "",
        "AcquisitionNumber": 1,
        "KVP": 120,
        "XRayTubeCurrent": 200,
        "GantryDetectorTilt": 0,
        "ConvolutionKernel": "STANDARD",
        "RescaleIntercept": RESCALE_INTERCEPT,
        "RescaleSlope": 1,
        "RescaleType": "HU",
        "WindowCenter": [40, -600],
        "WindowWidth": [400, 1500],
        "WindowCenterWidthExplanation": ["MEDIASTINUM", "LUNG"],
    }
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds
