"""What the ingest pipeline (``studies.ingest``) takes and answers: the sender, the
received files, and the outcome of each instance and of the whole request.

Apart from the pipeline so that its callers (STOW-RS, web upload, edge push,
report archiving) and its index-writing helpers can share them without
importing the pipeline itself; ``studies.ingest`` re-exports them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from hospitals.models import Institution


class Outcome(enum.StrEnum):
    STORED = "stored"
    ALREADY_STORED = "already_stored"
    REFUSED = "refused"


@dataclass(frozen=True)
class Sender:
    """Who is sending: the authenticated user and the institution they send for."""

    user: Any
    institution: Institution
    ip: str | None = None


@dataclass(frozen=True)
class ReceivedFile:
    """One object as received: a seekable stream with its size and SHA-256."""

    stream: BinaryIO
    size: int
    sha256: str
    name: str = ""  # the client's file name, for the upload page's result list


@dataclass
class InstanceResult:
    outcome: Outcome
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    code: str = ""
    reason: str = ""
    failure_reason: int = 0
    name: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.REFUSED


@dataclass
class IngestReport:
    results: list[InstanceResult] = field(default_factory=list)
    study_uids: set[str] = field(default_factory=set)

    @property
    def stored(self) -> list[InstanceResult]:
        return [r for r in self.results if r.outcome is Outcome.STORED]

    @property
    def refused(self) -> list[InstanceResult]:
        return [r for r in self.results if r.outcome is Outcome.REFUSED]
