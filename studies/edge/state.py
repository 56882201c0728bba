"""The agent's small local state: the cursor into Orthanc's changes, and confirmations.

The file is replaced atomically (write a temporary file in the same folder,
fsync it, rename it over the old one, fsync the folder): after a crash the
file holds either the old state or the new one, never half of each.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


@dataclass
class Confirmation:
    """A study the hub confirmed, kept only while retention may delete it one day."""

    study_instance_uid: str
    confirmed_at: datetime  # aware, UTC


@dataclass
class AgentState:
    # Sequence number of the last Orthanc change fully handled: every StableStudy
    # up to here has been confirmed by the hub (or refused by it for good).
    cursor: int = 0
    # Orthanc study id -> when the hub confirmed it (only with retention on).
    confirmed: dict[str, Confirmation] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "cursor": self.cursor,
            "confirmed": {
                orthanc_id: {
                    "study_instance_uid": item.study_instance_uid,
                    "confirmed_at": item.confirmed_at.isoformat(),
                }
                for orthanc_id, item in sorted(self.confirmed.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentState:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown state file version {data.get('version')!r}")
        return cls(
            cursor=int(data.get("cursor", 0)),
            confirmed={
                orthanc_id: Confirmation(
                    study_instance_uid=str(item["study_instance_uid"]),
                    confirmed_at=datetime.fromisoformat(item["confirmed_at"]),
                )
                for orthanc_id, item in data.get("confirmed", {}).items()
            },
        )


def load_state(path: Path) -> AgentState:
    """Return the state saved at ``path``, or a fresh one (cursor 0) if there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AgentState()
    return AgentState.from_json(json.loads(text))


def save_state(path: Path, state: AgentState) -> None:
    """Replace the state file atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialize first: a state that cannot be written must not touch the file.
    payload = json.dumps(state.to_json(), indent=1, sort_keys=True).encode("utf-8")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the folder's entry is on disk too.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename itself is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
