"""The project's two commands.

    python3 tools/dev.py demo    set up, migrate, seed and serve the embedded default
    python3 tools/dev.py test    start the services, lint, type-check and run the suite

Standard library only (it runs before the virtual environment exists), under
the system python3 >= 3.11. Every step is printed as it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".regional-cloud-install"
APPS = ["regional_cloud", "hospitals", "studies", "referrals"]

# Writes a .mo only when its bytes change, so a compiled tree stays clean in git.
COMPILE_PO = """
import pathlib
import sys
import polib
for po_path in sys.argv[1:]:
    mo_path = pathlib.Path(po_path[:-3] + ".mo")
    data = polib.pofile(po_path).to_binary()
    if not mo_path.exists() or mo_path.read_bytes() != data:
        mo_path.write_bytes(data)
        print("[dev] wrote " + str(mo_path))
"""


class StepFailed(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(
    command: Sequence[str | Path], *, env: dict[str, str] | None = None, check: bool = True
) -> int:
    say("$ " + shlex.join(str(c) for c in command))
    result = subprocess.run([str(c) for c in command], cwd=REPO, env=env, check=False)
    if check and result.returncode != 0:
        raise StepFailed(f"exit code {result.returncode}: {shlex.join(str(c) for c in command)}")
    return result.returncode


def venv_bin(name: str) -> str:
    return str(VENV / "bin" / name)


# --- Set-up shared by both commands -------------------------------------------


def ensure_venv() -> None:
    if VENV_PYTHON.exists():
        return
    say(f"creating the virtual environment {VENV.relative_to(REPO)}/")
    if run([sys.executable, "-m", "venv", str(VENV)], check=False) == 0:
        return
    # Debian splits venv (ensurepip) out of python3; as root we can add it.
    if os.geteuid() == 0 and Path("/usr/bin/apt-get").exists():
        version = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
        say(f"installing {version} to get venv")
        apt_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update"], env=apt_env)
        run(["apt-get", "install", "-y", version], env=apt_env)
        run([sys.executable, "-m", "venv", "--clear", str(VENV)])
        return
    raise StepFailed(
        "python3 -m venv failed; on Debian/Ubuntu install python3-venv "
        "(sudo apt-get install python3-venv) and run this again"
    )


def install_fingerprint(extras: str) -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    return f"{digest} {extras}"


def ensure_installed(*, with_tests: bool) -> None:
    """``pip install -e .[test]`` unless the stamp says pyproject.toml has not changed."""
    ensure_venv()
    wanted = "test" if with_tests else "plain"
    current = STAMP.read_text().strip() if STAMP.exists() else ""
    digest = install_fingerprint(wanted).split()[0]
    # A [test] install also satisfies the plain one.
    satisfied = {install_fingerprint(wanted), f"{digest} test"}
    if current in satisfied:
        say("dependencies: up to date (pyproject.toml unchanged)")
        return
    target = ".[test]" if with_tests else "."
    run(
        [
            VENV_PYTHON,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-e",
            target,
        ]
    )
    STAMP.write_text(install_fingerprint(wanted) + "\n")


def compile_translations() -> None:
    # The project's catalogue, and any an app keeps of its own (makemessages
    # writes an app's strings there when the app has a locale/ folder).
    found = list(REPO.glob("locale/*/LC_MESSAGES/*.po"))
    for app in APPS:
        found += (REPO / app).glob("**/locale/*/LC_MESSAGES/*.po")
    catalogues = sorted(str(p) for p in found)
    if not catalogues:
        say("translations: no .po catalogues yet")
        return
    say(f"translations: compiling {len(catalogues)} catalogue(s) to .mo")
    run([VENV_PYTHON, "-c", COMPILE_PO, *catalogues])


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "regional_cloud.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    return env


def has_command(name: str) -> bool:
    return any(REPO.glob(f"*/management/commands/{name}.py"))


# --- demo ---------------------------------------------------------------------


def demo_env(var: Path) -> dict[str, str]:
    env = base_env()
    for name in ("DATABASE_URL", "ARCHIVE_URL", "REDIS_URL", "SECRET_KEY"):
        if env.pop(name, None):
            say(f"demo: ignoring {name} from your environment (the demo is self-contained)")
    var.mkdir(parents=True, exist_ok=True)
    secret_file = var / "secret_key"
    if not secret_file.exists():
        say(f"demo: generating {secret_file}")
        secret_file.touch(mode=0o600)
        secret_file.write_text(secrets.token_urlsafe(50) + "\n")
    env.update(
        VAR_DIR=str(var),
        SECRET_KEY_FILE=str(secret_file),
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    return env


def cmd_demo(args: argparse.Namespace) -> int:
    ensure_installed(with_tests=False)
    compile_translations()
    env = demo_env(Path(args.var_dir).resolve())
    manage: list[str | Path] = [VENV_PYTHON, "manage.py"]
    run([*manage, "migrate", "--noinput"], env=env)
    for name in ("preflight", "seed_demo"):
        if has_command(name):
            run([*manage, name], env=env)
        else:
            say(f"demo: skipping manage.py {name} (not in this tree yet)")
    if args.no_serve:
        say("demo: set up; not serving (--no-serve)")
        return 0
    say(f"demo: serving on http://127.0.0.1:{args.port}/ (Ctrl-C stops it)")
    daphne = venv_bin("daphne")
    command = [daphne, "-b", "127.0.0.1", "-p", str(args.port), "regional_cloud.asgi:application"]
    say("$ " + shlex.join(command))
    sys.stdout.flush()
    os.chdir(REPO)
    os.execve(daphne, command, env)  # noqa: S606 - exec, so Ctrl-C reaches daphne itself


# --- test ---------------------------------------------------------------------


def test_env() -> dict[str, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from services import ServiceError, ensure_services

    env = base_env()
    try:
        env.update(ensure_services(env, python=VENV_PYTHON))
    except ServiceError as error:
        raise StepFailed(str(error)) from None
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["DEBUG"] = "0"
    env.pop("SECRET_KEY_FILE", None)
    # tests/conftest.py sets the test environment (VAR_DIR, ARCHIVE_URL) and only then
    # names the settings module; set here, pytest-django would import settings first.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def cmd_test(args: argparse.Namespace, pytest_args: list[str]) -> int:
    ensure_installed(with_tests=True)
    compile_translations()
    env = test_env()
    steps: list[tuple[str, list[str]]] = []
    if not args.no_lint:
        steps += [
            ("ruff check", [venv_bin("ruff"), "check", "."]),
            ("ruff format", [venv_bin("ruff"), "format", "--check", "."]),
            ("mypy", [venv_bin("mypy"), "."]),
        ]
    steps.append(("pytest", [venv_bin("pytest"), "-p", "no:cacheprovider", *pytest_args]))
    failed: list[str] = []
    for name, command in steps:
        say(f"--- {name}")
        code = run(command, env=env, check=False)
        if code != 0:
            # pytest's 5 ("no tests collected") is a failure too: a run must test something.
            failed.append(f"{name} (exit {code})")
    if failed:
        say("FAILED: " + ", ".join(failed))
        return 1
    say("all passed: " + ", ".join(name for name, _ in steps))
    return 0


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - the system python3 may be older
        print("tools/dev.py needs python3 >= 3.11", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog="python3 tools/dev.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="set up and serve the embedded default", allow_abbrev=False
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true", help="set up and seed, do not serve")
    demo.add_argument(
        "--var-dir", default=str(REPO / "var"), help="where the demo keeps its data (default var/)"
    )
    test = commands.add_parser(
        "test",
        help="lint, type-check and run the suite; other arguments go to pytest",
        allow_abbrev=False,
    )
    test.add_argument("--no-lint", action="store_true", help="skip ruff and mypy")
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "demo":
            if extra:
                parser.error("unrecognized arguments: " + " ".join(extra))
            return cmd_demo(args)
        if extra[:1] == ["--"]:
            extra = extra[1:]
        return cmd_test(args, extra)
    except StepFailed as error:
        say(f"ERROR: {error}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
