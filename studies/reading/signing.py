"""The report signature: it binds the reader, the time and a hash of the content.

The sealed content is the report's identity, study, findings, impression,
critical flag, author, signer and signing time (see ``regional_cloud.sealing``
for the hash, the HMAC, and why this is a seal rather than a legal e-signature).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from regional_cloud import sealing

KEY_SALT = "studies.reading.report-signature"


def canonical_content(report: Any, *, signer_id: int, signed_at: datetime) -> bytes:
    """Return the bytes a signature covers."""
    return sealing.canonical_json(
        {
            "report": str(report.uuid),
            "amends": str(report.amends.uuid) if report.amends_id else None,
            "study_instance_uid": report.study.study_instance_uid,
            "findings": report.findings,
            "impression": report.impression,
            "critical": bool(report.critical),
            "author": report.author_id,
            "signed_by": signer_id,
            "signed_at": sealing.timestamp(signed_at),
        }
    )


def seal(report: Any, *, signer_id: int, signed_at: datetime) -> tuple[str, str]:
    """Return ``(content_sha256, signature)`` for the report as it is now."""
    return sealing.seal(
        KEY_SALT, canonical_content(report, signer_id=signer_id, signed_at=signed_at)
    )


def verify(report: Any) -> bool:
    """Return whether a final report's content still matches its hash and signature."""
    if not report.signature or report.signed_at is None or report.signed_by_id is None:
        return False
    content = canonical_content(report, signer_id=report.signed_by_id, signed_at=report.signed_at)
    return sealing.verify(
        KEY_SALT, content, content_sha256=report.content_sha256, signature=report.signature
    )
