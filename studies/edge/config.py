"""The edge agent's configuration: a JSON file, command-line options, or both.

Options given on the command line win over the file. Secrets (the edge token,
Orthanc's password) are best kept in files of their own (``token_file``,
``orthanc_password_file``), readable by the agent's user only, so they never
appear in a process list.

Example ``/etc/regional-cloud/edge-agent.json``::

    {
      "orthanc_url": "http://127.0.0.1:8042",
      "orthanc_user": "edge-agent",
      "orthanc_password_file": "/etc/regional-cloud/orthanc-password",
      "hub_url": "https://hub.example.org",
      "token_file": "/etc/regional-cloud/edge-token",
      "state_file": "/var/lib/regional-cloud/edge-agent-state.json",
      "poll_interval": 5,
      "batch_size": 50,
      "delete_after_days": 30
    }
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AgentConfig:
    orthanc_url: str
    hub_url: str
    token: str
    state_file: Path
    orthanc_user: str = ""
    orthanc_password: str = ""
    # Seconds between looks at Orthanc's changes when there was nothing to do.
    poll_interval: float = 5.0
    # Instances per STOW-RS request, and a cap on a request's size.
    batch_size: int = 50
    max_batch_bytes: int = 256 * 1024 * 1024
    # Delete from Orthanc the studies the hub confirmed at least this many days ago.
    delete_after_days: float | None = None
    # Back-off while the hub (or Orthanc) is unavailable: initial, doubling, capped.
    retry_initial: float = 1.0
    retry_max: float = 60.0
    # Attempts per operation before giving up; None: never give up (the daemon).
    max_retries: int | None = None
    heartbeat_interval: float = 60.0
    changes_page: int = 100
    connect_timeout: float = 10.0
    read_timeout: float = 300.0

    def __post_init__(self) -> None:
        for name in ("orthanc_url", "hub_url", "token"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required")
        if not self.hub_url.startswith(("http://", "https://")):
            raise ConfigError("hub_url must start with http:// or https://")
        if self.batch_size < 1 or self.max_batch_bytes < 1 or self.changes_page < 1:
            raise ConfigError("batch_size, max_batch_bytes and changes_page must be positive")
        if self.retry_initial <= 0 or self.retry_max < self.retry_initial:
            raise ConfigError("retry_initial must be positive and at most retry_max")
        if self.delete_after_days is not None and self.delete_after_days < 0:
            raise ConfigError("delete_after_days must not be negative")

    def __repr__(self) -> str:
        # Never print the secrets, e.g. in a traceback or a debug log.
        return (
            f"AgentConfig(orthanc_url={self.orthanc_url!r}, hub_url={self.hub_url!r}, "
            f"state_file={str(self.state_file)!r}, token=***)"
        )


# Option name -> (type, help). Every option may also be a key of the JSON file.
OPTIONS: dict[str, tuple[type, str]] = {
    "orthanc_url": (str, "Orthanc's REST API, e.g. http://127.0.0.1:8042"),
    "orthanc_user": (str, "Orthanc user (HTTP Basic)"),
    "orthanc_password": (str, "Orthanc password (prefer --orthanc-password-file)"),
    "orthanc_password_file": (str, "file holding Orthanc's password"),
    "hub_url": (str, "the hub's base URL, e.g. https://hub.example.org"),
    "token": (str, "the edge node's token (prefer --token-file)"),
    "token_file": (str, "file holding the edge node's token"),
    "state_file": (str, "where the cursor and confirmations are kept"),
    "poll_interval": (float, "seconds between polls when idle (default 5)"),
    "batch_size": (int, "instances per STOW-RS request (default 50)"),
    "max_batch_bytes": (int, "bytes per STOW-RS request at most (default 256 MiB)"),
    "delete_after_days": (
        float,
        "delete from Orthanc studies the hub confirmed at least N days ago (default: never)",
    ),
    "retry_initial": (float, "first back-off delay in seconds (default 1)"),
    "retry_max": (float, "longest back-off delay in seconds (default 60)"),
    "max_retries": (int, "give up after N failed attempts (default: retry forever)"),
    "heartbeat_interval": (float, "seconds between heartbeats while busy (default 60)"),
    "changes_page": (int, "changes read from Orthanc per request (default 100)"),
}


def add_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Add the agent's options to an argparse parser (a management command's too)."""
    parser.add_argument("--config", help="JSON file with any of the options below")
    for name, (kind, help_text) in OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=help_text)
    parser.add_argument(
        "--once",
        action="store_true",
        help="push what is there, apply retention, send a heartbeat, then exit",
    )


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def config_from_options(options: dict[str, Any]) -> AgentConfig:
    """Return the configuration from a ``--config`` file overlaid with given options."""
    values: dict[str, Any] = {}
    if options.get("config"):
        try:
            loaded = json.loads(Path(options["config"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the config file: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError("the config file must hold a JSON object")
        unknown = set(loaded) - set(OPTIONS)
        if unknown:
            raise ConfigError(f"unknown keys in the config file: {', '.join(sorted(unknown))}")
        values.update(loaded)
    values.update({k: v for k, v in options.items() if k in OPTIONS and v is not None})
    if values.get("token_file") and not values.get("token"):
        values["token"] = _read_secret(values["token_file"])
    if values.get("orthanc_password_file") and not values.get("orthanc_password"):
        values["orthanc_password"] = _read_secret(values["orthanc_password_file"])
    values.pop("token_file", None)
    values.pop("orthanc_password_file", None)
    if not values.get("state_file"):
        raise ConfigError("state_file is required")
    values["state_file"] = Path(values["state_file"])
    accepted = {f.name for f in fields(AgentConfig)}
    try:
        return AgentConfig(**{k: v for k, v in values.items() if k in accepted})
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
