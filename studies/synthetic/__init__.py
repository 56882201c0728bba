"""Synthetic DICOM studies for the demo, the tests and the benchmarks.

Every generator yields pydicom Datasets one at a time, so a 400-slice CT never sits in
memory at once; `dataset_to_bytes` turns each into a Part 10 file. With an integer
`seed` (the default is 0) the same call gives the same UIDs and the same bytes, so
seeding the demo twice stores nothing new. Patient names are written in GB18030.

Each generator takes the patient, its own picture options, and the study options
`seed`, `study_date` and `institution_name`; a `study` made by `study_spec` replaces
those three, for a caller that needs the StudyInstanceUID or accession beforehand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset

from .common import (
    CHARACTER_SET,
    DEMO_INSTITUTION_NAME,
    IMPLEMENTATION_CLASS_UID,
    StudySpec,
    dataset_to_bytes,
    expected_pixel_bytes,
    study_spec,
    write_datasets,
)
from .ct import (
    NODULE_CENTER_MM,
    NODULE_DIAMETER_MM,
    ct_nodule_instances,
    ct_slice_thickness,
    ct_study,
)
from .dx import dr_chest_study
from .ecg import LEADS, ecg_study
from .mr import mr_study
from .patients import (
    DEMO_ISSUERS,
    NATIONAL_ID_ISSUER,
    PatientSpec,
    demo_patients,
    fake_national_id,
    national_id_check_digit,
)
from .us import us_study

GENERATORS: dict[str, Callable[..., Iterator[Dataset]]] = {
    "CT": ct_study,
    "DX": dr_chest_study,
    "DR": dr_chest_study,
    "MR": mr_study,
    "US": us_study,
    "ECG": ecg_study,
}
"""Generator by modality; DR is the everyday name of DX (digital radiography)."""


def study_for_modality(modality: str, patient: PatientSpec, **kwargs: Any) -> Iterator[Dataset]:
    """Return the datasets of one study of `modality` for `patient`; kwargs go to the generator."""
    try:
        generator = GENERATORS[modality.upper()]
    except KeyError:
        raise ValueError(f"no synthetic generator for modality {modality!r}") from None
    return generator(patient, **kwargs)


__all__ = [
    "CHARACTER_SET",
    "DEMO_INSTITUTION_NAME",
    "DEMO_ISSUERS",
    "GENERATORS",
    "IMPLEMENTATION_CLASS_UID",
    "LEADS",
    "NATIONAL_ID_ISSUER",
    "NODULE_CENTER_MM",
    "NODULE_DIAMETER_MM",
    "PatientSpec",
    "StudySpec",
    "ct_nodule_instances",
    "ct_slice_thickness",
    "ct_study",
    "dataset_to_bytes",
    "demo_patients",
    "dr_chest_study",
    "ecg_study",
    "expected_pixel_bytes",
    "fake_national_id",
    "mr_study",
    "national_id_check_digit",
    "study_for_modality",
    "study_spec",
    "us_study",
    "write_datasets",
]
