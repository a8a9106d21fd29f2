"""The error taxonomy of the peer store.

Every failure the controllers can see is one of these classes. Each carries a
stable `reason` (CamelCase, usable as a Kubernetes condition reason) and a
message that never contains credentials.
"""

from __future__ import annotations

from typing import ClassVar


class S3PeerError(Exception):
    """Base of every peer-store error."""

    reason: ClassVar[str] = "S3Error"
    #: True when the same request may succeed later without a change of configuration.
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key

    def __str__(self) -> str:
        return f"{self.message} (key {self.key})" if self.key else self.message


class Unreachable(S3PeerError):
    """The store could not be reached or answered with a server error: roles freeze."""

    reason = "S3Unreachable"
    transient = True


class Throttled(S3PeerError):
    """The store asked us to slow down (503 SlowDown, 429)."""

    reason = "S3Throttled"
    transient = True


class PreconditionFailed(S3PeerError):
    """A conditional request lost: the object is not (or no longer) the version we expected."""

    reason = "PreconditionFailed"


class CorruptObject(S3PeerError):
    """An object is not a valid envelope of a known version: never acted on."""

    reason = "CorruptObject"


class SignatureInvalid(CorruptObject):
    """An HMAC key is configured and the object's signature is missing or wrong."""

    reason = "SignatureInvalid"


class ConditionalWritesUnsupported(S3PeerError):
    """The store ignores or rejects If-None-Match / If-Match: unfit for coordination."""

    reason = "ConditionalWritesUnsupported"


class CoordinationMoved(S3PeerError):
    """dr-state of the app moved into a quorum of stores, and this cluster's DRPolicy names one store."""

    reason = "CoordinationMoved"


class StoreMisconfigured(S3PeerError):
    """Credentials refused, bucket missing, or a profile that cannot be used."""

    reason = "S3Misconfigured"


__all__ = [
    "ConditionalWritesUnsupported",
    "CoordinationMoved",
    "CorruptObject",
    "PreconditionFailed",
    "S3PeerError",
    "SignatureInvalid",
    "StoreMisconfigured",
    "Throttled",
    "Unreachable",
]
