"""Why an upload as a whole was refused: a stable code, a reason for people, an HTTP status."""

from __future__ import annotations

from typing import Any


class UploadRefused(Exception):
    """The request cannot be honoured. ``reason`` is translated; ``extra`` goes into the answer."""

    def __init__(self, code: str, reason: Any, *, status: int = 400, **extra: Any) -> None:
        super().__init__(str(reason))
        self.code = code
        self.reason = str(reason)
        self.status = status
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, **self.extra}
