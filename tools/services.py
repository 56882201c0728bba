"""Make the machine able to run the suite: system packages, PostgreSQL, Redis.

Standard library only: this runs under the system python3 before the virtual
environment exists. A machine that already has everything is only looked at
(``shutil.which``, ``dpkg-query``, a TCP connect) and apt is never called.
Missing packages are installed with apt-get when running as root; otherwise
the message says what to install.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/regional_cloud"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DICOMWEB_PLUGIN_PATHS = [
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
]


class ServiceError(RuntimeError):
    """Something the suite needs cannot be had; the message says what and how."""


def say(message: str) -> None:
    print(f"[services] {message}", flush=True)


def run(command: Sequence[str], *, check: bool = True, **kwargs: Any) -> int:
    say("$ " + shlex.join(command))
    result = subprocess.run(list(command), check=False, **kwargs)
    if check and result.returncode != 0:
        raise ServiceError(
            f"command failed with exit code {result.returncode}: " + shlex.join(command)
        )
    return int(result.returncode)


# --- System packages ----------------------------------------------------------


def dpkg_installed(package: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip().endswith("install ok installed")


def postgres_bindir() -> Path | None:
    """Return the newest PostgreSQL server bin directory (with initdb and pg_ctl)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def orthanc_path() -> str | None:
    configured = os.environ.get("ORTHANC_BIN")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None
    )


def dicomweb_plugin_path() -> str | None:
    configured = os.environ.get("ORTHANC_DICOMWEB_PLUGIN")
    if configured:
        return configured if Path(configured).is_file() else None
    for path in DICOMWEB_PLUGIN_PATHS:
        if Path(path).is_file():
            return path
    if shutil.which("dpkg"):
        listing = subprocess.run(
            ["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, check=False
        ).stdout.split()
        for path in sorted(listing, key=len):
            if "DicomWeb" in path and ".so" in Path(path).name and Path(path).is_file():
                return path
    return None


@dataclass(frozen=True)
class Requirement:
    package: str  # the Debian package that provides it
    present: Callable[[], bool]
    why: str


def requirements(*, need_postgres: bool, need_redis: bool) -> list[Requirement]:
    wanted = [
        Requirement("orthanc", lambda: orthanc_path() is not None, "the edge node in tests"),
        Requirement(
            "orthanc-dicomweb", lambda: dicomweb_plugin_path() is not None, "Orthanc's DICOMweb"
        ),
        Requirement("chromium", lambda: chromium_path() is not None, "browser tests"),
        Requirement(
            "fonts-noto-cjk", lambda: dpkg_installed("fonts-noto-cjk"), "Chinese in screenshots"
        ),
        Requirement(
            "poppler-utils", lambda: shutil.which("pdftotext") is not None, "reading report PDFs"
        ),
    ]
    if need_postgres:
        wanted.insert(
            0, Requirement("postgresql", lambda: postgres_bindir() is not None, "the database")
        )
    if need_redis:
        wanted.insert(
            1,
            Requirement("redis-server", lambda: shutil.which("redis-server") is not None, "Redis"),
        )
    return wanted


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(packages: Sequence[str]) -> None:
    """Install Debian packages with apt-get (root only), after one ``apt-get update``."""
    if not packages:
        return
    if not shutil.which("apt-get"):
        raise ServiceError(
            "missing system packages (" + ", ".join(packages) + ") and no apt-get to install "
            "them: install their equivalents by hand"
        )
    if not is_root():
        raise ServiceError(
            "missing system packages; install them with:\n    sudo apt-get install -y "
            + " ".join(packages)
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update"], env=env, stdin=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", *packages], env=env, stdin=subprocess.DEVNULL)


def ensure_packages(*, need_postgres: bool, need_redis: bool) -> None:
    for variable in ("CHROMIUM_PATH", "ORTHANC_BIN", "ORTHANC_DICOMWEB_PLUGIN"):
        value = os.environ.get(variable)
        if value and not Path(value).exists():
            raise ServiceError(f"{variable}={value}: no such file (unset it to use the default)")
    missing = [
        r
        for r in requirements(need_postgres=need_postgres, need_redis=need_redis)
        if not r.present()
    ]
    if not missing:
        say("system packages: all present")
        return
    for requirement in missing:
        say(f"missing: {requirement.package} ({requirement.why})")
    apt_install([r.package for r in missing])
    still = [r.package for r in missing if not r.present()]
    if still:
        raise ServiceError("installed but still not found: " + ", ".join(still))


# --- PostgreSQL ---------------------------------------------------------------


def accepts_connections(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if accepts_connections(host, port, timeout=1.0):
            return True
        time.sleep(0.3)
    return False


def _url_host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def cluster_port(conf: Path) -> int:
    """Return the port a Debian cluster's postgresql.conf sets (5432 if it sets none)."""
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 5432
    match = re.search(r"^\s*port\s*=\s*(\d+)", text, flags=re.MULTILINE)
    return int(match.group(1)) if match else 5432


def start_system_cluster(port: int) -> bool:
    """Start the Debian cluster (``/etc/postgresql/<ver>/main``) set to ``port``, if any."""
    if not shutil.which("pg_ctlcluster"):
        return False
    for conf in sorted(Path("/etc/postgresql").glob("*/main/postgresql.conf")):
        if cluster_port(conf) != port:
            continue
        version = conf.parent.parent.name
        run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return True
    return False


def as_postgres_user(command: Sequence[str]) -> list[str]:
    """Return ``command`` run as the ``postgres`` user when we are root (initdb refuses root)."""
    if not is_root():
        return list(command)
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


def free_port(preferred: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_throwaway_cluster(port: int) -> int:
    """Create (once) and start a private cluster under the temp dir; return its port."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServiceError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    base = Path(tempfile.gettempdir()) / f"regional-cloud-postgres-{uid}"
    data = base / "data"
    port_file = base / "port"
    if not (data / "PG_VERSION").exists():
        base.mkdir(mode=0o755, exist_ok=True)
        data.mkdir(mode=0o700, exist_ok=True)
        if is_root():
            shutil.chown(base, "postgres", "postgres")
            shutil.chown(data, "postgres", "postgres")
        say(f"creating a throwaway PostgreSQL cluster in {data}")
        run(
            as_postgres_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            )
        )
    elif port_file.exists() and accepts_connections("127.0.0.1", int(port_file.read_text())):
        return int(port_file.read_text())
    port = free_port(port)
    say(f"starting the throwaway PostgreSQL cluster on 127.0.0.1:{port}")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    run(
        as_postgres_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "postgres.log"),
                "-w",
                "start",
            ]
        )
    )
    port_file.write_text(str(port))
    if is_root():
        shutil.chown(port_file, "postgres", "postgres")
    return port


def ensure_postgres(database_url: str, python: Path, *, explicit: bool) -> str:
    """Return a DATABASE_URL whose server answers and whose role may create databases.

    With the default URL (``explicit`` false), a local server that refuses the
    ``postgres`` role without a password (a fresh Debian install asks for one over
    TCP) is left alone and a throwaway cluster of our own is used instead.
    """
    host, port = _url_host_port(database_url, 5432)
    if not accepts_connections(host, port):
        if host not in LOCAL_HOSTS:
            raise ServiceError(f"PostgreSQL at {host}:{port} (DATABASE_URL) is not reachable")
        say(f"PostgreSQL: nothing on {host}:{port}")
        if start_system_cluster(port):
            wait_for(host, port, 15)
    if accepts_connections(host, port):
        say(f"PostgreSQL: {host}:{port} accepts connections")
        problem = role_problem(database_url, python)
        if problem is None:
            return database_url
        if explicit or host not in LOCAL_HOSTS:
            raise ServiceError(problem)
        say(f"PostgreSQL: {problem}; using a throwaway cluster instead")
    else:
        say("PostgreSQL: no system cluster on that port; using a throwaway one")
    new_port = start_throwaway_cluster(port)
    if not wait_for("127.0.0.1", new_port, 20):
        raise ServiceError(f"the throwaway PostgreSQL did not come up on port {new_port}")
    parts = urlsplit(database_url)
    db_name = unquote(parts.path.lstrip("/")) or "regional_cloud"
    url = f"postgres://postgres@127.0.0.1:{new_port}/{db_name}"
    problem = role_problem(url, python)
    if problem is not None:
        raise ServiceError(f"the throwaway cluster: {problem}")
    return url


ROLE_CHECK = """
import sys
import psycopg
from urllib.parse import urlsplit, urlunsplit
parts = urlsplit(sys.argv[1])
url = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
try:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT current_user, rolcreatedb OR rolsuper FROM pg_roles"
            " WHERE rolname = current_user"
        ).fetchone()
except psycopg.Error as exc:
    print("ERROR " + str(exc).strip().replace(chr(10), " "))
    sys.exit(0)
print(("OK " if row[1] else "NOCREATEDB ") + row[0])
"""


def role_problem(database_url: str, python: Path) -> str | None:
    """Return why DATABASE_URL's role cannot create the test database, or None if it can.

    A role without CREATEDB on a local server is granted it when we are root.
    """
    result = subprocess.run(
        [str(python), "-c", ROLE_CHECK, database_url],
        capture_output=True,
        text=True,
        check=False,
    )
    answer = result.stdout.strip()
    if answer.startswith("OK "):
        say(f"PostgreSQL: role {answer[3:]} may create databases")
        return None
    if answer.startswith("ERROR "):
        return f"PostgreSQL refuses the DATABASE_URL credentials: {answer[6:]}"
    if not answer.startswith("NOCREATEDB "):
        return f"could not check the PostgreSQL role: {result.stderr.strip()}"
    role = answer.split(" ", 1)[1]
    host, port = _url_host_port(database_url, 5432)
    psql = shutil.which("psql")
    statement = 'ALTER ROLE "{}" CREATEDB'.format(role.replace('"', '""'))
    if host in LOCAL_HOSTS and is_root() and psql:
        say(f"PostgreSQL: granting CREATEDB to {role} (pytest-django creates test_*)")
        command = [psql, "-h", host, "-p", str(port), "-d", "postgres", "-c", statement]
        if run(as_postgres_user(command), check=False) == 0:
            return None
    return (
        f"PostgreSQL role {role} cannot create databases, which pytest-django needs: "
        f"run {statement} as a superuser"
    )


# --- Redis --------------------------------------------------------------------


def redis_ping(url: str) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            if parts.password:
                user = unquote(parts.username or "default")
                sock.sendall(_resp("AUTH", user, unquote(parts.password)))
                sock.recv(256)
            sock.sendall(_resp("PING"))
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


def ensure_redis(redis_url: str) -> str:
    if redis_ping(redis_url):
        say(f"Redis: {redis_url} answers PING")
        return redis_url
    parts = urlsplit(redis_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in LOCAL_HOSTS:
        raise ServiceError(f"Redis at {host}:{port} (REDIS_URL) does not answer PING")
    if accepts_connections(host, port):
        raise ServiceError(f"something on {host}:{port} accepts connections but is not Redis")
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceError("redis-server not found")
    say(f"Redis: starting redis-server on 127.0.0.1:{port}")
    run(
        [
            server,
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_ping(redis_url):
            return redis_url
        time.sleep(0.2)
    raise ServiceError(f"redis-server did not answer PING on 127.0.0.1:{port}")


# --- All of it ------------------------------------------------------------------


def ensure_services(env: dict[str, str], *, python: Path) -> dict[str, str]:
    """Return the variables the suite needs, with every service they name running.

    ``env`` is the environment to start from (DATABASE_URL and REDIS_URL are
    honoured when set); ``python`` is the virtualenv's interpreter, used to
    check the database role with psycopg.
    """
    database_url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
    need_postgres = not accepts_connections(*_url_host_port(database_url, 5432))
    need_redis = not redis_ping(redis_url)
    ensure_packages(need_postgres=need_postgres, need_redis=need_redis)
    database_url = ensure_postgres(database_url, python, explicit=bool(env.get("DATABASE_URL")))
    redis_url = ensure_redis(redis_url)
    chromium, orthanc, plugin = chromium_path(), orthanc_path(), dicomweb_plugin_path()
    if not (chromium and orthanc and plugin):
        raise ServiceError("Chromium, Orthanc or its DICOMweb plugin is still missing")
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CHROMIUM_PATH": chromium,
        "ORTHANC_BIN": orthanc,
        "ORTHANC_DICOMWEB_PLUGIN": plugin,
    }


def redact(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


if __name__ == "__main__":
    venv_python = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    try:
        found = ensure_services(dict(os.environ), python=venv_python)
    except ServiceError as error:
        print(f"[services] ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    for key, value in found.items():
        print(f"{key}={redact(value)}")
