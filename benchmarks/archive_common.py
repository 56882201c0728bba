"""What the archive benchmark's measures share: results, progress, HTTP clients.

The measures are one module each (``archive_ingest``, ``archive_qido``,
``archive_wado``, ``archive_stow``); ``archive_report`` prints them and
``archive_bench`` runs them all.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from benchmarks import hub as hubs
from benchmarks.data import new_boundary, stream_body
from benchmarks.orthanc import OrthancServer

DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Results:
    ingest: dict[str, float] = field(default_factory=dict)  # "hub/1/1" -> inst/s
    # "hub/1/1" -> CPU ms per instance: {"server": …, "postgres": …, "client": …}
    ingest_cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    qido: dict[str, dict[str, float]] = field(default_factory=dict)
    wado: dict[str, float] = field(default_factory=dict)  # MB/s
    stow: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fill: dict[str, Any] = field(default_factory=dict)

    def qido_ms(self, server: str, key: str) -> float | None:
        figures = self.qido.get(server)
        return figures[key] if figures else None


def stow_body_headers(boundary: str, token: str) -> dict[str, str]:
    return {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": DICOM_JSON,
        "Authorization": f"Bearer {token}",
    }


def run_clients(clients: int, jobs: Sequence[Callable[[requests.Session], None]]) -> float:
    """Run ``jobs`` on ``clients`` threads (one Session each); return the wall time."""
    lock = threading.Lock()
    pending = list(reversed(jobs))
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def worker() -> None:
        with requests.Session() as session:
            start.wait()
            while True:
                with lock:
                    if not pending or errors:
                        return
                    job = pending.pop()
                try:
                    job(session)
                except BaseException as exc:  # reported by the caller
                    with lock:
                        errors.append(exc)
                    return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed


def short(text: str, size: int = 200) -> str:
    """Return ``text`` on one line, cut to ``size`` characters, for a note."""
    return " ".join(text.split())[:size]


def hub_errors(hub: hubs.HubServer) -> str:
    """Return the last error lines of the hub's log (a 500 page says nothing)."""
    lines = hub.log_tail(200_000).splitlines()
    errors = [line for line in lines if "Error:" in line or "FATAL" in line]
    return " | ".join(short(line, 160) for line in errors[-2:])


def stow_failures(response: requests.Response) -> str:
    """Return the STOW response's status and its distinct failure comments."""
    try:
        failed = response.json().get("00081198", {}).get("Value", [])
        reasons = {str(item.get("00000902", {}).get("Value", ["?"])[0]) for item in failed}
    except ValueError:
        return f"{response.status_code}: {short(response.text)}"
    return f"{response.status_code}, {len(failed)} refused: {'; '.join(sorted(reasons))}"


def hub_stow_job(
    url: str, token: str, payloads: Sequence[bytes]
) -> Callable[[requests.Session], None]:
    def job(session: requests.Session) -> None:
        boundary = new_boundary()
        response = session.post(
            f"{url}/dicom-web/studies",
            data=stream_body(boundary, payloads),
            headers=stow_body_headers(boundary, token),
            timeout=600,
        )
        if response.status_code != 200:
            raise RuntimeError(f"hub STOW answered {stow_failures(response)}")
        stored = response.json().get("00081199", {}).get("Value", [])
        if len(stored) != len(payloads):
            raise RuntimeError(f"hub STOW stored {len(stored)} of {len(payloads)}")

    return job


def orthanc_post_job(orthanc: OrthancServer, payload: bytes) -> Callable[[requests.Session], None]:
    def job(session: requests.Session) -> None:
        response = session.post(
            f"{orthanc.url}/instances",
            data=payload,
            auth=orthanc.auth,
            headers={"Content-Type": "application/dicom"},
            timeout=600,
        )
        if response.status_code != 200 or response.json().get("Status") != "Success":
            raise RuntimeError(f"Orthanc answered {response.status_code}: {response.text[:500]}")

    return job


def batches(payloads: Sequence[bytes], size: int) -> list[Sequence[bytes]]:
    return [payloads[i : i + size] for i in range(0, len(payloads), size)]
