"""The conclusion's seal: a hash of what was concluded, by whom and when, and an HMAC of it.

Like the report signature (``studies.reading.signing``): the signed content is
a canonical JSON (sorted keys, no spaces, UTF-8) of the consultation's
identity, patient reference, studies, conclusion, signer and time;
``content_sha256`` is its SHA-256 and ``signature`` an HMAC-SHA256 with a key
derived from SECRET_KEY. An integrity seal, not a legal electronic signature
(that needs a CA-issued certificate, see the report module).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

KEY_SALT = "referrals.consultation.conclusion-signature"


def canonical_content(consultation: Any, *, signer_id: int, signed_at: datetime) -> bytes:
    """Return the bytes a conclusion's signature covers."""
    content = {
        "consultation": str(consultation.uuid),
        "patient": str(consultation.patient.uuid),
        "studies": sorted(s.study_instance_uid for s in consultation.studies.all()),
        "conclusion": consultation.conclusion,
        "signed_by": signer_id,
        "signed_at": signed_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def _hmac(content: bytes, secret: str) -> str:
    return salted_hmac(KEY_SALT, content, secret=secret, algorithm="sha256").hexdigest()


def seal(consultation: Any, *, signer_id: int, signed_at: datetime) -> tuple[str, str]:
    """Return ``(content_sha256, signature)`` for the conclusion as it is now."""
    content = canonical_content(consultation, signer_id=signer_id, signed_at=signed_at)
    return hashlib.sha256(content).hexdigest(), _hmac(content, settings.SECRET_KEY)


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
    if not constant_time_compare(hashlib.sha256(content).hexdigest(), consultation.content_sha256):
        return False
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(
        constant_time_compare(_hmac(content, key), consultation.signature) for key in secrets
    )
