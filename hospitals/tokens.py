"""Bearer tokens for edges and API users: random, shown once, stored as SHA-256.

A token has 256 bits of entropy, so an unsalted SHA-256 is enough to make a
leaked table useless while keeping look-up a single indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

EDGE_PREFIX = "edge_"
USER_PREFIX = "ric_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_prefix(token: str) -> str:
    """Return the first characters, shown in lists so a person can tell tokens apart."""
    return token[:12]
