"""The demo's synthetic studies, imported through the one ingest pipeline as edges would."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

from pydicom.dataset import Dataset

from hospitals.models import EdgeNode, Institution
from studies.ingest import ReceivedFile, Sender, instances_ingest
from studies.models import Study
from studies.synthetic import (
    dataset_to_bytes,
    demo_patients,
    study_for_modality,
    study_spec,
)

BATCH = 20
# (issuer code, PatientID, modality, study date, generator options)
DEMO_STUDIES: list[tuple[str, str, str, date, dict[str, Any]]] = [
    ("dongshan-clinic", "100023", "DX", date(2026, 11, 3), {}),
    ("county-hospital", "ZY20240311", "CT", date(2026, 11, 5), {"slices": 120}),
    ("dongshan-clinic", "100024", "US", date(2026, 11, 10), {}),
    ("dongshan-clinic", "100031", "ECG", date(2026, 11, 12), {}),
    ("xishan-clinic", "100023", "DX", date(2026, 11, 14), {"size": 1536}),
    ("xishan-clinic", "100057", "US", date(2026, 11, 16), {"cine_frames": 12}),
    ("county-hospital", "ZY20240415", "MR", date(2026, 11, 18), {}),
    ("city-centre", "M0012345", "CT", date(2026, 11, 19), {"slices": 40, "size": 256}),
    ("dongshan-clinic", "100150", "DX", date(2026, 11, 20), {"size": 1024}),
]


def seed_studies(*, log: Any = print) -> int:
    """Import every demo study not yet in the index; return how many were imported."""
    patients = {(p.issuer, p.patient_id): p for p in demo_patients()}
    imported = 0
    for issuer, patient_id, modality, day, options in DEMO_STUDIES:
        patient = patients[(issuer, patient_id)]
        spec = study_spec(patient, modality, study_date=day)
        if Study.objects.filter(study_instance_uid=spec.study_uid).exists():
            continue
        institution = Institution.objects.get(code=issuer)
        edge = (
            EdgeNode.objects.filter(institution=institution).select_related("service_user").first()
        )
        sender = Sender(user=edge.service_user if edge else None, institution=institution)
        stored = _ingest(study_for_modality(modality, patient, study=spec, **options), sender)
        log(f"  {institution.code}: {modality} study, {stored} instances")
        imported += 1
    return imported


def _ingest(datasets: Iterable[Dataset], sender: Sender) -> int:
    stored = 0
    for batch in _batches(datasets):
        report = instances_ingest(files=batch, sender=sender)
        if report.refused:
            codes = sorted({r.code for r in report.refused})
            raise RuntimeError(f"the demo study was refused by ingest: {codes}")
        stored += len(report.results)
    return stored


def _batches(datasets: Iterable[Dataset]) -> Iterator[list[ReceivedFile]]:
    batch: list[ReceivedFile] = []
    for ds in datasets:
        data = dataset_to_bytes(ds)
        batch.append(
            ReceivedFile(
                stream=io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest()
            )
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
