"""The conclusion's seal: a hash of what was concluded, by whom and when, and an HMAC of it.

The sealed content is the consultation's identity, patient reference, studies,
conclusion, signer and time (see ``regional_cloud.sealing``, shared with the
report signature).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from regional_cloud import sealing

KEY_SALT = "referrals.consultation.conclusion-signature"


def canonical_content(consultation: Any, *, signer_id: int, signed_at: datetime) -> bytes:
    """Return the bytes a conclusion's signature covers."""
    return sealing.canonical_json(
        {
            "consultation": str(consultation.uuid),
            "patient": str(consultation.patient.uuid),
            "studies": sorted(s.study_instance_uid for s in consultation.studies.all()),
            "conclusion": consultation.conclusion,
            "signed_by": signer_id,
            "signed_at": sealing.timestamp(signed_at),
        }
    )


def seal(consultation: Any, *, signer_id: int, signed_at: datetime) -> tuple[str, str]:
    """Return ``(content_sha256, signature)`` for the conclusion as it is now."""
    content = canonical_content(consultation, signer_id=signer_id, signed_at=signed_at)
    return sealing.seal(KEY_SALT, content)


def verify(consultation: Any) -> bool:
    """Return whether a concluded consultation still matches its hash and signature."""
    if (
        not consultation.signature
        or consultation.concluded_at is None
        or consultation.concluded_by_id is None
    ):
        return False
    content = canonical_content(
        consultation, signer_id=consultation.concluded_by_id, signed_at=consultation.concluded_at
    )
    return sealing.verify(
        KEY_SALT,
        content,
        content_sha256=consultation.content_sha256,
        signature=consultation.signature,
    )
