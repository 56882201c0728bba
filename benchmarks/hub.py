"""Run the hub for a benchmark: its own database, a folder archive, daphne.

The benchmark database (``rc_bench_<pid>``) is created, migrated and dropped
here; the hub runs as production does (DEBUG off, PostgreSQL index, the
folder store that fsyncs every object), under the same daphne command.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from benchmarks.ports import free_port

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
HELPER = REPO / "benchmarks" / "hub_setup.py"


def server_url(database_url: str | None) -> str:
    """Return ``postgres://user@host:port`` of a DATABASE_URL, without its database."""
    if not database_url:
        return DEFAULT_SERVER
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def create_database(server: str, name: str) -> str:
    """Create database ``name`` on ``server``; return its URL."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"unsafe database name {name!r}")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"unsafe database name {name!r}")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def hub_env(database_url: str, directory: Path) -> dict[str, str]:
    """Return the environment of a production-like hub with its files under ``directory``."""
    var = directory / "var"
    (var / "static").mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "STOW_MAX_BYTES"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="regional_cloud.settings",
        DATABASE_URL=database_url,
        ARCHIVE_URL=f"file://{directory / 'archive'}",
        VAR_DIR=str(var),
        SECRET_KEY=secrets.token_urlsafe(48),
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        PYTHONPATH=str(REPO),
    )
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> None:
    """Run ``manage.py args`` with the hub's environment; raise with its output if it fails."""
    result = subprocess.run(  # noqa: S603 - our interpreter, our manage.py
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def helper(env: dict[str, str], *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run benchmarks/hub_setup.py with ``args``; return the JSON it prints last."""
    result = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, str(HELPER), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"hub_setup.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


@dataclass
class HubServer:
    url: str
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-size:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_daphne(env: dict[str, str], directory: Path, *, timeout: float = 60.0) -> HubServer:
    """Start ``daphne`` serving the hub on a free loopback port; wait until it answers."""
    port = free_port()
    log_path = directory / f"daphne-{port}.log"
    daphne = Path(sys.executable).with_name("daphne")
    command = [
        str(daphne) if daphne.exists() else "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "regional_cloud.asgi:application",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the venv's daphne
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = HubServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=2):  # noqa: S310
                return server
        except urllib.error.HTTPError:
            return server  # it answers
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"daphne did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def proc_status_kb(pid: int, field_name: str) -> int:
    """Return a ``/proc/<pid>/status`` memory figure (VmRSS, VmHWM) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS; return False if the kernel refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
