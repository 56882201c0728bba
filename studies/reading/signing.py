"""The report signature: it binds the reader, the time and a hash of the content.

The signed content is a canonical JSON (sorted keys, no spaces, UTF-8) of the
report's identity, study, findings, impression, critical flag, author, signer
and signing time. ``content_sha256`` is its SHA-256; ``signature`` is an
HMAC-SHA256 over the same bytes with a key derived from SECRET_KEY, so the hub
can tell whether a stored report was altered after signing.

This is an integrity seal, not a legal electronic signature: under the PRC
Electronic Signature Law (电子签名法) a deployment must sign with a certificate
issued to the reader by a licensed CA (and keep the key in a device the reader
controls); the hash this module computes is what such a signature would sign.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

KEY_SALT = "studies.reading.report-signature"


def canonical_content(report: Any, *, signer_id: int, signed_at: datetime) -> bytes:
    """Return the bytes a signature covers."""
    content = {
        "report": str(report.uuid),
        "amends": str(report.amends.uuid) if report.amends_id else None,
        "study_instance_uid": report.study.study_instance_uid,
        "findings": report.findings,
        "impression": report.impression,
        "critical": bool(report.critical),
        "author": report.author_id,
        "signed_by": signer_id,
        "signed_at": signed_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def _hmac(content: bytes, secret: str) -> str:
    return salted_hmac(KEY_SALT, content, secret=secret, algorithm="sha256").hexdigest()


def seal(report: Any, *, signer_id: int, signed_at: datetime) -> tuple[str, str]:
    """Return ``(content_sha256, signature)`` for the report as it is now."""
    content = canonical_content(report, signer_id=signer_id, signed_at=signed_at)
    return hashlib.sha256(content).hexdigest(), _hmac(content, settings.SECRET_KEY)


def verify(report: Any) -> bool:
    """Return whether a final report's content still matches its hash and signature.

    Keys in SECRET_KEY_FALLBACKS are tried too, so rotating the secret keeps old
    reports verifiable.
    """
    if not report.signature or report.signed_at is None or report.signed_by_id is None:
        return False
    content = canonical_content(report, signer_id=report.signed_by_id, signed_at=report.signed_at)
    if not constant_time_compare(hashlib.sha256(content).hexdigest(), report.content_sha256):
        return False
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(_hmac(content, key), report.signature) for key in secrets)
