"""Abdominal ultrasound: an RGB still (Ultrasound Image IOD, PS3.3 A.6) and optionally a
cine loop (Ultrasound Multi-frame Image IOD, PS3.3 A.7)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UltrasoundImageStorage, UltrasoundMultiFrameImageStorage

from .common import (
    DEMO_INSTITUTION_NAME,
    StudySpec,
    base_dataset,
    item,
    resolve_study,
    set_pixels,
)
from .patients import PatientSpec

DEPTH_CM = 16.0
SECTOR_HALF_ANGLE = math.radians(35)
FRAME_RATE = 30
_TICK_COLOUR = (255, 220, 0)
_FLOW_COLOURS = ((210, 40, 40), (40, 90, 230))

Grid = npt.NDArray[np.float32]


class _Sector:
    """A curved-array sector: geometry and tissue fixed, the vessel pulsing per frame."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.width, self.height = width, height
        self.apex = (width / 2, height * 0.08)
        self.depth_px = height * 0.88
        cols = np.arange(width, dtype=np.float32)[None, :] - self.apex[0]
        rows = np.arange(height, dtype=np.float32)[:, None] - self.apex[1]
        self.radius = np.hypot(cols, rows)
        self.inside = (np.abs(np.arctan2(cols, rows)) <= SECTOR_HALF_ANGLE) & (
            self.radius <= self.depth_px
        )
        unit = self.depth_px / 10  # distances below are tenths of the depth

        def ellipse(cx: float, cy: float, ax: float, ay: float) -> Grid:
            return np.asarray(
                ((cols - cx * unit) / (ax * unit)) ** 2 + ((rows - cy * unit) / (ay * unit)) ** 2
            )

        echo = np.ones((height, width), dtype=np.float32)  # liver parenchyma
        cyst = ellipse(1.2, 4.5, 1.1, 0.7) <= 1
        shadow_free = (np.abs(cols - 1.2 * unit) < 1.0 * unit) & (rows > 4.5 * unit)
        echo[shadow_free] = 1.35  # posterior acoustic enhancement behind the fluid
        echo[np.abs(self.radius - 8.6 * unit) < 0.15 * unit] = 2.6  # diaphragm
        echo[cyst] = 0.04
        echo *= 1.0 - 0.35 * self.radius / self.depth_px  # attenuation with depth
        self.echo = echo
        self.vessel_centre = (-1.8 * unit, 6.0 * unit)
        self.vessel_distance = np.hypot(cols - self.vessel_centre[0], rows - self.vessel_centre[1])
        self.vessel_radius = 0.45 * unit
        self.rows = rows
        pad = 64
        self.speckle = rng.rayleigh(1.0, (height + pad, width)).astype(np.float32)

    def frame(self, index: int) -> npt.NDArray[np.uint8]:
        """Return frame `index` as (rows, cols, 3) RGB."""
        pulse = 1.0 + 0.15 * math.sin(2 * math.pi * 1.2 * index / FRAME_RATE)
        vessel = self.vessel_distance <= self.vessel_radius * pulse
        echo = np.where(vessel, 0.05, self.echo)
        # Tissue moves with breathing: slide the speckle a little each frame.
        offset = (index * 2) % 64
        speckle = self.speckle[offset : offset + self.height]
        grey = np.where(self.inside, np.clip(echo * speckle * 70, 0, 255), 0).astype(np.uint8)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        upper = self.rows < self.vessel_centre[1]
        rgb[vessel & upper] = _FLOW_COLOURS[0]
        rgb[vessel & ~upper] = _FLOW_COLOURS[1]
        right = self.width - 24
        for cm in range(int(DEPTH_CM) + 1):
            row = int(self.apex[1] + cm * self.depth_px / DEPTH_CM)
            rgb[row : row + 2, right : right + (10 if cm % 5 == 0 else 5)] = _TICK_COLOUR
        return rgb

    def calibration(self) -> Dataset:
        """Return the Sequence of Ultrasound Regions item that makes the image measurable."""
        cm_per_px = DEPTH_CM / self.depth_px
        return item(
            RegionSpatialFormat=1,
            RegionDataType=1,
            RegionFlags=0,
            RegionLocationMinX0=0,
            RegionLocationMinY0=0,
            RegionLocationMaxX1=self.width - 1,
            RegionLocationMaxY1=self.height - 1,
            PhysicalUnitsXDirection=3,  # cm
            PhysicalUnitsYDirection=3,
            ReferencePixelX0=int(self.apex[0]),
            ReferencePixelY0=int(self.apex[1]),
            PhysicalDeltaX=cm_per_px,
            PhysicalDeltaY=cm_per_px,
        )


def us_study(
    patient: PatientSpec,
    *,
    width: int = 640,
    height: int = 480,
    cine_frames: int = 0,
    seed: int | None = 0,
    study_date: date | datetime | None = None,
    institution_name: str = DEMO_INSTITUTION_NAME,
    study: StudySpec | None = None,
) -> Iterator[Dataset]:
    """Yield an RGB still of the liver, then a cine loop when `cine_frames` > 0."""
    if width < 64 or height < 64 or cine_frames < 0:
        raise ValueError("an ultrasound image is at least 64x64 and cine_frames is not negative")
    spec = resolve_study(
        patient, "US", study, seed=seed, study_date=study_date, institution_name=institution_name
    )
    sector = _Sector(width, height, spec.rng("us", width, height))
    series_uid = spec.uid("us-series", width, height)
    kinds = [("still", 1)] + ([("cine", cine_frames)] if cine_frames else [])
    for number, (kind, frames) in enumerate(kinds, start=1):
        pixels = np.stack([sector.frame(i) for i in range(frames)]) if kind == "cine" else None
        ds = base_dataset(
            spec,
            sop_class_uid=UltrasoundMultiFrameImageStorage
            if pixels is not None
            else UltrasoundImageStorage,
            sop_instance_uid=spec.uid("us-image", width, height, kind, frames),
            series_uid=series_uid,
            series_number=1,
            series_description="肝胆超声",
            instance_number=number,
            content_time=spec.at(45 * number),
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
        ds.BodyPartExamined = "ABDOMEN"
        ds.PatientOrientation = ""  # a sector scan has no fixed patient direction
        ds.LossyImageCompression = "00"
        ds.SequenceOfUltrasoundRegions = [sector.calibration()]
        if pixels is None:
            set_pixels(ds, sector.frame(0), bits_stored=8)
        else:
            ds.FrameTime = round(1000 / FRAME_RATE, 3)
            ds.FrameIncrementPointer = Tag("FrameTime")
            ds.CineRate = ds.RecommendedDisplayFrameRate = FRAME_RATE
            set_pixels(ds, pixels, bits_stored=8)
        yield ds
