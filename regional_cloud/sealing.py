"""Integrity seals: a SHA-256 of canonical JSON and an HMAC of it keyed from SECRET_KEY.

Signed reports and consultation conclusions use this. It is an integrity seal,
not a legal electronic signature: under the PRC Electronic Signature Law
(电子签名法) a deployment must sign with a certificate issued to the signer by a
licensed CA; the hash computed here is what such a signature would sign.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac


def canonical_json(content: dict[str, Any]) -> bytes:
    """Return the content as canonical JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def timestamp(moment: datetime) -> str:
    """Return the signing time as it is sealed (UTC, microseconds)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _hmac(salt: str, content: bytes, secret: str) -> str:
    return salted_hmac(salt, content, secret=secret, algorithm="sha256").hexdigest()


def seal(salt: str, content: bytes) -> tuple[str, str]:
    """Return ``(content_sha256, signature)`` of the content."""
    return hashlib.sha256(content).hexdigest(), _hmac(salt, content, settings.SECRET_KEY)


def verify(salt: str, content: bytes, *, content_sha256: str, signature: str) -> bool:
    """Return whether hash and signature still match the content.

    Keys in SECRET_KEY_FALLBACKS are tried too, so rotating the secret keeps old
    seals verifiable.
    """
    if not constant_time_compare(hashlib.sha256(content).hexdigest(), content_sha256):
        return False
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(_hmac(salt, content, key), signature) for key in secrets)
