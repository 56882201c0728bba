"""Builders shared by the QIDO-RS and WADO-RS tests: datasets, ingest, multipart parsing."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from pydicom.dataset import Dataset

from hospitals.models import Institution
from studies.ingest import ReceivedFile, Sender, instances_ingest
from studies.multipart import MultipartReader, parse_content_type
from tests.dicom_helpers import ct_small, to_bytes


def ct(**attributes: Any) -> Dataset:
    """Return CT_small with fresh UIDs and the given attributes set (keywords)."""
    uids = {k: attributes.pop(k) for k in ("study_uid", "series_uid", "sop_uid") if k in attributes}
    ds = ct_small(**uids)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def ingest(*objects: Dataset | bytes, user: Any, institution: Institution) -> None:
    """Store objects through the one ingest pipeline, as STOW-RS would."""
    files = []
    for obj in objects:
        data = obj if isinstance(obj, bytes) else to_bytes(obj)
        files.append(ReceivedFile(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest()))
    report = instances_ingest(files=files, sender=Sender(user=user, institution=institution))
    assert not report.refused, [(r.code, r.reason) for r in report.refused]


def multipart_parts(response: Any) -> list[tuple[dict[str, str], bytes]]:
    """Return (headers, body) of each part of a multipart/related response."""
    media_type, params = parse_content_type(response["Content-Type"])
    assert media_type == "multipart/related", response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    reader = MultipartReader(io.BytesIO(body), params["boundary"])
    parts = []
    for part in reader.parts():
        parts.append((part.headers, part.stream.read()))
        part.close()
    return parts


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
