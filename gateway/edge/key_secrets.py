"""API key secrets: `gk_live_<key id>_<random>`, shown once, stored only as their SHA-256.

The key id inside the secret lets the edge find the one candidate record without a search; the
secret is then checked against that record's hash with a constant-time compare.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "gk_live_"
SECRET = re.compile(rb"^gk_live_([0-9a-f]{16})_[A-Za-z0-9_-]{32,64}$")


def new_key_id() -> str:
    return secrets.token_hex(8)


def new_secret(key_id: str) -> str:
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def key_id_of(secret: bytes) -> str | None:
    """The key id a well-formed secret names; None for anything else."""
    match = SECRET.match(secret)
    return match.group(1).decode() if match else None


def matches(secret: bytes, stored_digest: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
