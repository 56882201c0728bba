"""Measure 2: QIDO-RS study search latency on a large index (Orthanc's for reference)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import requests

from benchmarks import hub as hubs
from benchmarks.archive_common import DICOM_JSON, Results, log, short
from benchmarks.orthanc import OrthancServer

QIDO_QUERIES = [
    {"PatientName": "王*"},
    {"StudyDate": "20240101-20240630"},
    {"ModalitiesInStudy": "CT"},
    {"PatientName": "李*", "StudyDate": "20230101-20231231"},
    {"StudyDate": "20250101-", "ModalitiesInStudy": "CT"},
    {"PatientName": "张*", "ModalitiesInStudy": "MR"},
    {"StudyDate": "20240301-20240331", "ModalitiesInStudy": "DX"},
    {"PatientName": "陈*", "StudyDate": "20230601-20251231", "ModalitiesInStudy": "CT"},
]
WARM_UP = 10  # QIDO requests not counted: first connections, first plans


def latencies(
    session: requests.Session, url: str, count: int, **kwargs: Any
) -> tuple[list[float], int]:
    """Time ``count`` QIDO requests cycling through the queries; return ms and last matches."""
    timings: list[float] = []
    matches = 0
    for index in range(WARM_UP + count):
        query = {**QIDO_QUERIES[index % len(QIDO_QUERIES)], "limit": "50"}
        began = time.perf_counter()
        response = session.get(url, params=query, timeout=60, **kwargs)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code not in (200, 204):
            raise RuntimeError(f"QIDO answered {response.status_code}: {short(response.text)}")
        matches = len(response.json()) if response.status_code == 200 else 0
        if index >= WARM_UP:
            timings.append(elapsed)
    return timings, matches


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure_qido(
    results: Results,
    hub: hubs.HubServer,
    orthanc: OrthancServer,
    *,
    reader_token: str,
    count: int,
) -> None:
    for name, url, kwargs in (
        (
            "hub",
            f"{hub.url}/dicom-web/studies",
            {"headers": {"Authorization": f"Bearer {reader_token}", "Accept": DICOM_JSON}},
        ),
        (
            "orthanc",
            f"{orthanc.url}/dicom-web/studies",
            {"headers": {"Accept": DICOM_JSON}, "auth": orthanc.auth},
        ),
    ):
        try:
            with requests.Session() as session:
                timings, _matches = latencies(session, url, count, **kwargs)
        except (RuntimeError, ValueError, requests.RequestException) as exc:
            results.notes.append(f"qido {name}: not measured ({exc})")
            log(f"qido {name}: not measured: {exc}")
            continue
        results.qido[name] = {
            "p50": statistics.median(timings),
            "p95": percentile(timings, 0.95),
            "max": max(timings),
            "requests": len(timings),
        }
        log(
            f"qido {name}: p50 {results.qido[name]['p50']:.1f} ms, p95 "
            f"{results.qido[name]['p95']:.1f} ms ({len(timings)} requests)"
        )
