"""Start the Debian ``Orthanc`` binary for a benchmark, as durable as the hub.

tests/fixtures/orthanc.py does the same for tests but reports through pytest;
this one raises ``RuntimeError`` so the benchmark runs without pytest.
``SyncStorageArea`` is on: Orthanc fsyncs every stored file, as the hub's
folder store does, so the two are compared at the same durability.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks.ports import free_port

PLUGIN_CANDIDATES = [
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
]


def orthanc_binary() -> str:
    path = os.environ.get("ORTHANC_BIN") or shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(path).exists():
        raise RuntimeError(f"Orthanc not found at {path}: install the Debian 'orthanc' package")
    return path


def dicomweb_plugin() -> str:
    configured = os.environ.get("ORTHANC_DICOMWEB_PLUGIN")
    if configured:
        return configured
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "orthanc-dicomweb"],  # noqa: S607 - the system's dpkg
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
    except OSError:
        listing = []
    candidates = [p for p in listing if "DicomWeb" in p and ".so" in Path(p).name]
    for path in sorted(candidates, key=len) + PLUGIN_CANDIDATES:
        if Path(path).is_file():
            return path
    raise RuntimeError("the Orthanc DICOMweb plugin was not found: install 'orthanc-dicomweb'")


@dataclass
class OrthancServer:
    url: str
    user: str
    password: str
    directory: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)

    def log_tail(self, size: int = 4000) -> str:
        path = self.directory / "orthanc.log"
        return path.read_text(encoding="utf-8", errors="replace")[-size:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_orthanc(directory: Path, *, timeout: float = 30.0) -> OrthancServer:
    """Start Orthanc with storage and index under ``directory``; wait until it answers."""
    directory.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    user, password = "bench", secrets.token_urlsafe(12)
    config: dict[str, Any] = {
        "Name": "bench",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "BENCH",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "index"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {user: password},
        # The same durability as the hub's folder store: fsync every object.
        "SyncStorageArea": True,
        "StorageCompression": False,
        "StableAge": 60,
        "SaveJobs": False,
        "Plugins": [dicomweb_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    config_path = directory / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    with (directory / "orthanc.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our config, a fixed binary
            [orthanc_binary(), str(config_path)],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = OrthancServer(
        url=f"http://127.0.0.1:{http_port}",
        user=user,
        password=password,
        directory=directory,
        process=process,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if requests.get(f"{server.url}/system", auth=server.auth, timeout=2).ok:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer within {timeout:.0f} s:\n{server.log_tail()}")
