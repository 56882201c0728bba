"""Run the hub for a benchmark: its own database, a folder archive, its servers.

The benchmark database (``rc_bench_<pid>``) is created, migrated and dropped
here; the hub runs as production does (DEBUG off, PostgreSQL index, the
folder store that fsyncs every object), under the same commands: gunicorn
for HTTP (``start_gunicorn``), daphne for the demo and WebSockets
(``start_daphne``).
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
    name: str = "daphne"

    @property
    def pid(self) -> int:
        return self.process.pid

    def serving_pids(self) -> list[int]:
        """Return the processes that run requests: gunicorn's workers, or daphne itself."""
        children = child_pids(self.pid)
        return children if self.name == "gunicorn" and children else [self.pid]

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


def _venv_command(name: str) -> str:
    """Return the venv's script ``name`` (beside this interpreter), else ``name`` on PATH."""
    script = Path(sys.executable).with_name(name)
    return str(script) if script.exists() else name


def daphne_command(port: int) -> list[str]:
    """The demo's single server: HTTP and WebSockets through the ASGI application."""
    return [
        _venv_command("daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "regional_cloud.asgi:application",
    ]


def gunicorn_command(
    port: int, *, workers: int | None = None, threads: int | None = None
) -> list[str]:
    """Production's HTTP server (README, "Deployment"), bound to loopback ``port``."""
    command = [
        _venv_command("gunicorn"),
        "-c",
        str(REPO / "regional_cloud" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    if threads is not None:
        command += ["--threads", str(threads)]
    return command


def start_daphne(env: dict[str, str], directory: Path, *, timeout: float = 60.0) -> HubServer:
    """Start ``daphne`` serving the hub on a free loopback port; wait until it answers."""
    port = free_port()
    return _start("daphne", daphne_command(port), port, env, directory, timeout)


def start_gunicorn(
    env: dict[str, str],
    directory: Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    timeout: float = 60.0,
) -> HubServer:
    """Start gunicorn (gthread, WSGI) serving the hub's HTTP on a free loopback port."""
    port = free_port()
    command = gunicorn_command(port, workers=workers, threads=threads)
    return _start("gunicorn", command, port, env, directory, timeout)


def _start(
    name: str,
    command: list[str],
    port: int,
    env: dict[str, str],
    directory: Path,
    timeout: float,
) -> HubServer:
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the venv's server
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = HubServer(
        url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, name=name
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=2):  # noqa: S310
                return server
        except urllib.error.HTTPError:
            return server  # it answers
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def child_pids(pid: int) -> list[int]:
    """Return the direct children of ``pid`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def processes_named(name: str) -> list[int]:
    """Return the processes whose command name is ``name`` (from /proc), e.g. ``postgres``."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user + system) the processes ``pids`` have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


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
