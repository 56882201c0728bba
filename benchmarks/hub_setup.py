"""Benchmark data inside the hub's database, run with the hub's environment.

    python benchmarks/hub_setup.py setup
    python benchmarks/hub_setup.py fill --instances 100000 --institution PK --other PK

``setup`` builds a region, a county hospital with an edge node (the sender)
and a radiologist with an API token (the reader), through the services, and
prints their tokens as JSON. ``fill`` writes index rows only — patients,
studies, series, instances and the group permissions ingest would grant — with
``bulk_create`` (instances with COPY), so the QIDO benchmark has a realistic index without storing
images. A fifth of the studies belong to another institution and are not
granted to the reader, so the permission filter has something to exclude.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from django.contrib.auth.models import Permission  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import JSONField, Model  # noqa: E402

from hospitals.models import CLINICAL_ROLES, Institution, Region, Role, Tier  # noqa: E402
from hospitals.services import (  # noqa: E402
    api_token_create,
    edge_node_create,
    institution_create,
    institution_role_group,
    user_create_for_institution,
)
from studies.dicom_parse import parse_instance  # noqa: E402
from studies.dicom_tags import SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS, pick  # noqa: E402
from studies.models import (  # noqa: E402
    Instance,
    Patient,
    Series,
    Study,
    StudyGroupObjectPermission,
)
from studies.synthetic import ct_study, dataset_to_bytes, demo_patients  # noqa: E402

FAMILY_NAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAMES = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰"]
MODALITIES = ["CT", "CT", "CT", "MR", "DX", "DX", "US"]
UID_ROOT = "1.2.826.0.1.3680043.8.498.99"  # pydicom's prefix; ".99" marks benchmark rows
BATCH = 2000


def setup() -> dict[str, Any]:
    region = Region.objects.create(code="bench", name="基准测试区")
    county = institution_create(
        region=region,
        code="bench-county",
        name="基准县人民医院",
        tier=Tier.COUNTY_HOSPITAL,
        grade="2",
    )
    other = institution_create(
        region=region,
        code="bench-clinic",
        name="基准镇卫生院",
        tier=Tier.TOWNSHIP_CLINIC,
        grade="1",
        hub=county,
    )
    edge = edge_node_create(institution=county, name="bench-edge")
    reader = user_create_for_institution(
        institution=county,
        username="bench-reader",
        full_name="基准读片医生",
        password=f"bench-{random.SystemRandom().getrandbits(64):x}",
        role=Role.SPECIALIST,
    ).user
    _token, reader_token = api_token_create(user=reader, name="benchmark")
    return {
        "edge_token": edge.token,
        "reader_token": reader_token,
        "institution": county.pk,
        "other": other.pk,
    }


def _instance_metadata_template() -> dict[str, Any]:
    """Return the DICOM JSON ingest keeps for one real synthetic CT slice."""
    dataset = next(ct_study(demo_patients()[0], slices=1))
    return parse_instance(io.BytesIO(dataset_to_bytes(dataset))).json


def _pn(name: str) -> dict[str, Any]:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]}


def _text(vr: str, value: str) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


class RawJson(str):
    """A JSON document already encoded: COPY writes it as it is."""


def _json_text(value: Any) -> str:
    return value if isinstance(value, RawJson) else json.dumps(value)


def copy_rows(model: type[Model], rows: Iterable[dict[str, Any]]) -> int:
    """Insert ``rows`` (values by attribute name, absent ones defaulted) with COPY.

    ``bulk_create`` spends 90 % of its time quoting 3.5 kB JSON values into
    arrays on the client (psycopg's ListDumper), so the instance rows, the
    bulk of the index, go through COPY instead.
    """
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {f.attname: f.get_default() for f in fields}
    is_json = [isinstance(f, JSONField) for f in fields]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for its COPY support
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                values = [row.get(f.attname, defaults[f.attname]) for f in fields]
                copy.write_row(
                    [_json_text(v) if j else v for v, j in zip(values, is_json, strict=True)]
                )
                count += 1
    return count


def _instance_rows(
    studies: list[Study], series: list[Series], per_study: int, template_rest: str
) -> Iterator[dict[str, Any]]:
    for study, one_series in zip(studies, series, strict=True):
        study_uid, series_uid = study.study_instance_uid, one_series.series_instance_uid
        for i in range(per_study):
            sop = f"{series_uid}.{i + 1}"
            yield {
                "study_id": study.pk,
                "series_id": one_series.pk,
                "sop_instance_uid": sop,
                "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
                "instance_number": i + 1,
                "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                "rows": 512,
                "columns": 512,
                "size_bytes": 526_000,
                "sha256": f"{i:064x}",
                "archive_key": f"dicom/{study_uid}/{series_uid}/{sop}/0.dcm",
                "pixel_data_offset": 4000,
                "metadata": RawJson(
                    f'{{"0020000D": {{"vr": "UI", "Value": ["{study_uid}"]}}, '
                    f'"0020000E": {{"vr": "UI", "Value": ["{series_uid}"]}}, '
                    f'"00080018": {{"vr": "UI", "Value": ["{sop}"]}}, {template_rest}'
                ),
            }


def fill(*, instances: int, per_study: int, institution_pk: int, other_pk: int) -> dict[str, Any]:
    """Write ``instances`` instance rows in studies of ``per_study`` (one series each)."""
    started = time.monotonic()
    rng = random.Random(20240601)  # noqa: S311 - benchmark data, not secrets
    ours = Institution.objects.get(pk=institution_pk)
    other = Institution.objects.get(pk=other_pk)
    template = _instance_metadata_template()
    for uid_tag in ("0020000D", "0020000E", "00080018"):
        template.pop(uid_tag)
    template_rest = json.dumps(template)[1:]  # after "{": the entries shared by every row
    n_studies = max(1, instances // per_study)
    n_patients = max(1, n_studies // 2)
    counts: dict[str, Any] = {"patients": 0, "studies": 0, "series": 0, "instances": 0, "grants": 0}
    with transaction.atomic():
        patients = []
        for p in range(n_patients):
            issuer = other if p % 5 == 4 else ours
            name = f"{FAMILY_NAMES[rng.randrange(len(FAMILY_NAMES))]}^{rng.choice(GIVEN_NAMES)}"
            patients.append(
                Patient(
                    issuer=issuer,
                    patient_id=f"B{p:07d}",
                    patient_name=name,
                    patient_sex=rng.choice("MF"),
                    patient_birth_date=f"{rng.randint(1930, 2020)}{rng.randint(1, 12):02d}15",
                )
            )
        Patient.objects.bulk_create(patients, batch_size=BATCH)
        counts["patients"] = len(patients)
        studies = []
        for s in range(n_studies):
            patient = patients[s % n_patients]
            modality = rng.choice(MODALITIES)
            date = f"{rng.randint(2023, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            uid = f"{UID_ROOT}.{s + 1}"
            accession = f"BA{s:010d}"
            metadata = {
                "00080005": _text("CS", "GB18030"),
                "00080020": _text("DA", date),
                "00080030": _text("TM", "093000"),
                "00080050": _text("SH", accession),
                "00080090": _pn("王^建华"),
                "00080201": _text("SH", "+0800"),
                "00081030": _text("LO", f"{modality} 检查"),
                "00100010": _pn(patient.patient_name),
                "00100020": _text("LO", patient.patient_id),
                "00100021": _text("LO", patient.issuer.code),
                "00100030": _text("DA", patient.patient_birth_date),
                "00100040": _text("CS", patient.patient_sex),
                "0020000D": _text("UI", uid),
                "00200010": _text("SH", str(s + 1)),
            }
            studies.append(
                Study(
                    study_instance_uid=uid,
                    patient=patient,
                    origin=patient.issuer,
                    accession_number=accession,
                    study_id=str(s + 1),
                    study_date=date,
                    study_time="093000",
                    study_description=f"{modality} 检查",
                    referring_physician_name="王^建华",
                    modalities_in_study=modality,
                    number_of_series=1,
                    number_of_instances=per_study,
                    size_bytes=per_study * 526_000,
                    metadata=pick(metadata, STUDY_LEVEL_TAGS),
                )
            )
        Study.objects.bulk_create(studies, batch_size=BATCH)
        counts["studies"] = len(studies)
        series = [
            Series(
                study=study,
                series_instance_uid=f"{study.study_instance_uid}.1",
                modality=study.modalities_in_study,
                series_number=1,
                series_description=study.study_description,
                number_of_instances=per_study,
                size_bytes=per_study * 526_000,
                metadata=pick(
                    {
                        "00080060": _text("CS", study.modalities_in_study),
                        "0020000E": _text("UI", f"{study.study_instance_uid}.1"),
                        "00200011": {"vr": "IS", "Value": [1]},
                    },
                    SERIES_LEVEL_TAGS,
                ),
            )
            for study in studies
        ]
        Series.objects.bulk_create(series, batch_size=BATCH)
        counts["series"] = len(series)
        counts["instances"] = copy_rows(
            Instance, _instance_rows(studies, series, per_study, template_rest)
        )
        view = Permission.objects.get(content_type__app_label="studies", codename="view_study")
        groups = [institution_role_group(ours, role) for role in sorted(CLINICAL_ROLES)]
        grants = [
            StudyGroupObjectPermission(permission=view, group=group, content_object=study)
            for study in studies
            if study.origin_id == ours.pk
            for group in groups
        ]
        StudyGroupObjectPermission.objects.bulk_create(grants, batch_size=BATCH)
        counts["grants"] = len(grants)
    with connection.cursor() as cursor:
        # The planner needs statistics, as autovacuum would have gathered by now.
        cursor.execute("ANALYZE")
    counts["seconds"] = round(time.monotonic() - started, 1)
    counts["visible_studies"] = sum(1 for s in studies if s.origin_id == ours.pk)
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup")
    fill_parser = sub.add_parser("fill")
    fill_parser.add_argument("--instances", type=int, required=True)
    fill_parser.add_argument("--per-study", type=int, default=10)
    fill_parser.add_argument("--institution", type=int, required=True)
    fill_parser.add_argument("--other", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "setup":
        answer = setup()
    else:
        answer = fill(
            instances=args.instances,
            per_study=args.per_study,
            institution_pk=args.institution,
            other_pk=args.other,
        )
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
