"""Helpers for the edge tests: synthetic studies in a real Orthanc, and the agent's config."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from orthanc_api_client import ChangeType

from studies.edge.config import AgentConfig
from studies.synthetic import ct_study, dataset_to_bytes, demo_patients
from tests.fixtures import free_port
from tests.fixtures.orthanc import Orthanc


@dataclass
class EdgeStudyFixture:
    study_instance_uid: str
    orthanc_id: str
    instance_ids: list[str]
    patient_name: str
    files: dict[str, bytes]  # SOP Instance UID -> the bytes uploaded


def upload_ct(orthanc: Orthanc, *, slices: int = 20, seed: int = 0) -> EdgeStudyFixture:
    """Upload a small synthetic CT into Orthanc (one slice at a time); return what it holds."""
    patient = demo_patients()[seed % len(demo_patients())]
    instance_ids: list[str] = []
    files: dict[str, bytes] = {}
    uid = ""
    for ds in ct_study(patient, slices=slices, size=64, seed=seed):
        data = dataset_to_bytes(ds)
        files[str(ds.SOPInstanceUID)] = data
        uid = str(ds.StudyInstanceUID)
        instance_ids.extend(orthanc.client.upload(data))
    orthanc_id = orthanc.client.get_json(f"instances/{instance_ids[0]}/study")["ID"]
    return EdgeStudyFixture(uid, orthanc_id, instance_ids, patient.dicom_name, files)


def wait_stable(orthanc: Orthanc, orthanc_id: str, timeout: float = 30.0) -> None:
    """Wait until Orthanc has logged StableStudy for ``orthanc_id`` (StableAge is 1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        since = 0
        while True:
            changes, last, done = orthanc.client.get_changes(since=since, limit=1000)
            if any(
                c.change_type == ChangeType.STABLE_STUDY and c.resource_id == orthanc_id
                for c in changes
            ):
                return
            since = last
            if done or not changes:
                break
        time.sleep(0.25)
    raise AssertionError(f"Orthanc did not report study {orthanc_id} stable in {timeout} s")


def last_change(orthanc: Orthanc) -> int:
    _changes, last, _done = orthanc.client.get_changes(since=10**9, limit=1)
    return int(last)


def closed_port_url() -> str:
    """Return a URL on 127.0.0.1 where nothing listens (a port free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


def agent_config(
    orthanc: Orthanc, hub_url: str, token: str, state_file: Path, **overrides: Any
) -> AgentConfig:
    values: dict[str, Any] = {
        "orthanc_url": orthanc.url,
        "orthanc_user": orthanc.user,
        "orthanc_password": orthanc.password,
        "hub_url": hub_url,
        "token": token,
        "state_file": state_file,
        "batch_size": 7,  # 20 slices: three requests, so batching is exercised
        "max_retries": 3,
        "retry_initial": 0.01,
        "retry_max": 0.05,
        "read_timeout": 60.0,
    }
    values.update(overrides)
    return AgentConfig(**values)


def sop_uid(data: bytes) -> str:
    import io

    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
