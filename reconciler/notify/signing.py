"""HMAC-SHA256 signatures of webhook bodies, for the sender and for receivers.

Receivers can import this module alone: it needs only the standard library.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Ramen-Signature"
_SCHEME = "sha256="


def sign(body: bytes, key: bytes) -> str:
    """The `X-Ramen-Signature` value for `body`: `sha256=` and the hex HMAC-SHA256 of the bytes."""
    return _SCHEME + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, key: bytes) -> bool:
    """Whether `header` (the received `X-Ramen-Signature`) is the HMAC-SHA256 of `body` under `key`.

    For receivers. Pass the raw request body exactly as received (before any JSON parsing
    or re-encoding) and the key from the same Secret the operator uses. The comparison
    takes constant time, so the answer leaks nothing about how close a forgery came.
    """
    if not header or not key:
        return False
    expected = sign(body, key).encode("ascii")
    # Non-ASCII input cannot match; encoding it keeps compare_digest on bytes (it rejects non-ASCII str).
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))
