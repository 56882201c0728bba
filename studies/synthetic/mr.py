"""Axial T1 head series of a brain phantom (MR Image IOD, PS3.3 A.4)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage

from .common import DEMO_INSTITUTION_NAME, StudySpec, base_dataset, resolve_study, set_pixels
from .patients import PatientSpec

FIELD_OF_VIEW_MM = 240.0
SLICE_THICKNESS_MM = 5.0
SLICE_GAP_MM = 1.0
BITS_STORED = 12

# T1-weighted intensities, outermost first: (normalised radius, value).
_LAYERS = ((1.0, 900), (0.94, 80), (0.89, 260), (0.86, 560), (0.68, 760))
_CSF = 240


def mr_study(
    patient: PatientSpec,
    *,
    slices: int = 20,
    size: int = 256,
    seed: int | None = 0,
    study_date: date | datetime | None = None,
    institution_name: str = DEMO_INSTITUTION_NAME,
    study: StudySpec | None = None,
) -> Iterator[Dataset]:
    """Yield an axial T1 brain series from the skull base (instance 1) to the vertex."""
    if slices < 1 or size < 32:
        raise ValueError("an MR series needs at least one slice of at least 32x32 pixels")
    spec = resolve_study(
        patient, "MR", study, seed=seed, study_date=study_date, institution_name=institution_name
    )
    rng = spec.rng("mr", slices, size)
    spacing = round(FIELD_OF_VIEW_MM / size, 4)
    origin = round(-(size - 1) / 2 * spacing, 4)
    axis = (origin + np.arange(size) * spacing).astype(np.float32)
    x, y = axis[None, :], axis[:, None]
    head = np.sqrt((x / 78) ** 2 + (y / 98) ** 2)
    ventricles = np.minimum(
        np.sqrt(((x + 9) / 6) ** 2 + ((y + 5) / 24) ** 2),
        np.sqrt(((x - 9) / 6) ** 2 + ((y + 5) / 24) ** 2),
    )
    step = SLICE_THICKNESS_MM + SLICE_GAP_MM
    series_uid = spec.uid("mr-series", slices, size)
    frame_uid = spec.uid("mr-frame-of-reference", slices, size)
    for index in range(slices):
        t = index / max(slices - 1, 1)
        scale = math.sqrt(1.0 - (0.85 * t) ** 2)  # the head narrows toward the vertex
        image = np.zeros((size, size), dtype=np.float32)
        for radius, value in _LAYERS:
            image[head <= radius * scale] = value
        if 0.3 <= t <= 0.75:
            image[ventricles <= scale] = _CSF
        # A magnitude image of complex Gaussian noise: Rician, never negative.
        noise = rng.normal(0.0, 12.0, (2, size, size)).astype(np.float32)
        magnitude = np.hypot(image + noise[0], noise[1])
        pixels = np.clip(magnitude, 0, (1 << BITS_STORED) - 1).astype(np.uint16)
        z = round(-40.0 + index * step, 4)
        ds = base_dataset(
            spec,
            sop_class_uid=MRImageStorage,
            sop_instance_uid=spec.uid("mr-slice", slices, size, index),
            series_uid=series_uid,
            series_number=3,
            series_description="T1 轴位",
            instance_number=index + 1,
            content_time=spec.at(120 + index * 3),
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.BodyPartExamined = "HEAD"
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = "se2d1"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = 500, 12, 1
        ds.FlipAngle = 90
        ds.MagneticFieldStrength = 1.5
        ds.ImagingFrequency = 63.87
        ds.ImagedNucleus = "1H"
        ds.NumberOfAverages = 2
        ds.AcquisitionNumber = 1
        ds.SliceThickness, ds.SpacingBetweenSlices = SLICE_THICKNESS_MM, step
        ds.ImagePositionPatient = [origin, origin, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.PixelSpacing = [spacing, spacing]
        ds.WindowCenter, ds.WindowWidth = 500, 1000
        set_pixels(ds, pixels, bits_stored=BITS_STORED)
        yield ds
