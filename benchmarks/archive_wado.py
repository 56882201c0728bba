"""Measure 3: WADO-RS retrieval of a whole series, MB/s, hub against Orthanc."""

from __future__ import annotations

import statistics
import time
from typing import Any

import requests

from benchmarks import hub as hubs
from benchmarks.archive_common import MULTIPART_DICOM, Results, log, short
from benchmarks.data import Variant
from benchmarks.orthanc import OrthancServer


def fetch_series(session: requests.Session, url: str, **kwargs: Any) -> int:
    """GET a series as multipart, reading it in 1 MB pieces; return the bytes received."""
    received = 0
    with session.get(url, stream=True, timeout=600, **kwargs) as response:
        if response.status_code != 200:
            raise RuntimeError(f"WADO answered {response.status_code}: {short(response.text)}")
        if not response.headers.get("Content-Type", "").startswith("multipart/related"):
            raise RuntimeError(f"WADO answered {response.headers.get('Content-Type')!r}")
        for chunk in response.iter_content(1024 * 1024):
            received += len(chunk)
    return received


def measure_wado(
    results: Results,
    hub: hubs.HubServer,
    orthanc: OrthancServer,
    variant: Variant,
    *,
    reader_token: str,
    runs: int,
) -> None:
    path = f"/dicom-web/studies/{variant.study_instance_uid}/series/{variant.series_instance_uid}"
    for name, url, kwargs in (
        (
            "hub",
            hub.url + path,
            {"headers": {"Authorization": f"Bearer {reader_token}", "Accept": MULTIPART_DICOM}},
        ),
        (
            "orthanc",
            orthanc.url + path,
            {"headers": {"Accept": MULTIPART_DICOM}, "auth": orthanc.auth},
        ),
    ):
        rates = []
        try:
            with requests.Session() as session:
                for _run in range(runs):
                    began = time.perf_counter()
                    received = fetch_series(session, url, **kwargs)
                    elapsed = time.perf_counter() - began
                    if received < variant.size_bytes:
                        raise RuntimeError(
                            f"received {received} bytes, the series has {variant.size_bytes}"
                        )
                    rates.append(received / 1e6 / elapsed)
        except (RuntimeError, requests.RequestException) as exc:
            results.notes.append(f"wado {name}: not measured ({exc})")
            log(f"wado {name}: not measured: {exc}")
            continue
        results.wado[name] = statistics.median(rates)
        log(f"wado {name}: {', '.join(f'{r:.1f}' for r in rates)} MB/s")
