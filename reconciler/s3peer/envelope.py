"""The envelope every coordination object is wrapped in (protocol.md "Envelope").

Decoding is strict: anything that is not exactly a known envelope is corrupt,
and corrupt objects are reported, never acted on. Signing is optional HMAC-SHA256
over the canonical JSON of the envelope without its `signature` field.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from reconciler.s3peer.errors import CorruptObject, S3PeerError, SignatureInvalid

API_VERSION = "p2p.ramendr.openshift.io/v1"
MAX_OBJECT_BYTES = 1024 * 1024
#: Ramen metadata may be larger than our objects, but a decompression bomb must not take the operator down.
MAX_METADATA_BYTES = 16 * 1024 * 1024
SIGNATURE_SCHEME = "hmac-sha256:"

_FIELDS = {"apiVersion", "kind", "writer", "writtenAt", "nonce", "body"}
_OPTIONAL = {"signature"}
_SIG_RE = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


class Kind(StrEnum):
    DR_STATE = "DRState"
    DR_INTENT = "DRIntent"
    CLUSTER_STATUS = "ClusterStatus"
    STORAGE_CLASSES = "StorageClasses"
    HEALTH = "Health"
    DIGEST = "Digest"  # the single-object digest of earlier versions, still read
    DIGEST_INDEX = "DigestIndex"
    DIGEST_PAGE = "DigestPage"
    DR_ACCEPTOR = "DRStateAcceptor"
    DR_STATE_MOVED = "DRStateMoved"


class EnvelopeTooLarge(S3PeerError, ValueError):
    """Raised when encoding: we refuse to write what a reader would call corrupt.

    An S3PeerError, so every caller that handles a failed write (a reconcile, the heartbeat)
    handles this one too instead of failing on it every time.
    """

    reason = "EnvelopeTooLarge"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message, key=key)


@dataclass(frozen=True)
class Envelope:
    kind: Kind
    writer: str
    written_at: str
    nonce: str
    body: dict[str, Any]
    signature: str | None = None


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: the basis of signatures and content hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def content_hash(body: Mapping[str, Any]) -> str:
    """Short content hash of a body (64 bits of SHA-256): equal bodies, equal hashes."""
    return hashlib.sha256(canonical_json(body)).hexdigest()[:16]


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_nonce() -> str:
    return str(uuid.uuid4())


def _sign(unsigned: Mapping[str, Any], key: bytes) -> str:
    return _sign_bytes(canonical_json(unsigned), key)


def _sign_bytes(unsigned: bytes, key: bytes) -> str:
    return SIGNATURE_SCHEME + hmac.new(key, unsigned, hashlib.sha256).hexdigest()


def canonical_object(fields: Mapping[str, bytes]) -> bytes:
    """canonical_json of an object whose values are given as their canonical JSON already.

    Lets a large body (the digest) be serialised once, from parts kept between writes, instead
    of once for the signature and again for the object.
    """
    return b"{" + b",".join(canonical_json(k) + b":" + v for k, v in sorted(fields.items())) + b"}"


def encode(
    kind: Kind,
    writer: str,
    body: Mapping[str, Any],
    *,
    now: datetime,
    nonce: str | None = None,
    hmac_key: bytes | None = None,
) -> tuple[bytes, str]:
    """Encode an envelope; returns (bytes, nonce)."""
    return encode_canonical_body(kind, writer, canonical_json(dict(body)), now=now, nonce=nonce, hmac_key=hmac_key)


def encode_canonical_body(
    kind: Kind,
    writer: str,
    body_json: bytes,
    *,
    now: datetime,
    nonce: str | None = None,
    hmac_key: bytes | None = None,
) -> tuple[bytes, str]:
    """`encode` for a body given as its canonical JSON (the same bytes `encode` would write)."""
    n = nonce or new_nonce()
    fields = {
        "apiVersion": canonical_json(API_VERSION),
        "kind": canonical_json(str(kind)),
        "writer": canonical_json(writer),
        "writtenAt": canonical_json(format_time(now)),
        "nonce": canonical_json(n),
        "body": body_json,
    }
    if hmac_key:
        fields["signature"] = canonical_json(_sign_bytes(canonical_object(fields), hmac_key))
    data = canonical_object(fields)
    if len(data) > MAX_OBJECT_BYTES:
        raise EnvelopeTooLarge(f"{kind} envelope is {len(data)} bytes, over the {MAX_OBJECT_BYTES} byte limit")
    return data, n


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys would let a signed and an acted-on value differ. dict() does the work in C:
    # this runs once per JSON object, thousands of times for one digest.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"duplicate JSON key {k!r}")
            seen.add(k)
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_json(data: bytes) -> Any:
    """Parse UTF-8 JSON, rejecting duplicate keys and NaN/Infinity."""
    return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def decode(
    data: bytes,
    *,
    key: str | None = None,
    expected_kind: Kind | None = None,
    hmac_key: bytes | None = None,
) -> Envelope:
    """Decode and validate an envelope; raises CorruptObject or SignatureInvalid."""
    if len(data) > MAX_OBJECT_BYTES:
        raise CorruptObject(f"object is {len(data)} bytes, over the {MAX_OBJECT_BYTES} byte limit", key=key)
    try:
        doc = strict_json(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptObject(f"not valid JSON: {e}", key=key) from None
    if not isinstance(doc, dict):
        raise CorruptObject("envelope is not a JSON object", key=key)
    missing = _FIELDS - doc.keys()
    if missing:
        raise CorruptObject(f"envelope lacks {sorted(missing)}", key=key)
    unknown = doc.keys() - _FIELDS - _OPTIONAL
    if unknown:
        raise CorruptObject(f"envelope has unknown fields {sorted(unknown)}", key=key)
    if doc["apiVersion"] != API_VERSION:
        raise CorruptObject(f"unknown apiVersion {doc['apiVersion']!r}", key=key)
    try:
        kind = Kind(doc["kind"])
    except (ValueError, TypeError):
        raise CorruptObject(f"unknown kind {doc['kind']!r}", key=key) from None
    if expected_kind is not None and kind != expected_kind:
        raise CorruptObject(f"kind {kind} where {expected_kind} was expected", key=key)
    for f in ("writer", "writtenAt", "nonce"):
        if not isinstance(doc[f], str) or not doc[f] or len(doc[f]) > MAX_SHORT_STRING:
            raise CorruptObject(f"envelope field {f} must be a non-empty string of at most {MAX_SHORT_STRING} "
                                "characters", key=key)
    if not _TIME_RE.match(doc["writtenAt"]):
        raise CorruptObject(f"writtenAt {doc['writtenAt']!r} is not an RFC 3339 UTC time", key=key)
    if not isinstance(doc["body"], dict):
        raise CorruptObject("envelope body must be a JSON object", key=key)
    sig = doc.get("signature")
    if sig is not None and (not isinstance(sig, str) or not _SIG_RE.match(sig)):
        raise CorruptObject("signature is malformed", key=key)
    if hmac_key:
        if sig is None:
            raise SignatureInvalid("object is unsigned but an HMAC key is configured", key=key)
        unsigned = {k: v for k, v in doc.items() if k != "signature"}
        if not hmac.compare_digest(_sign(unsigned, hmac_key), sig):
            raise SignatureInvalid("signature does not match", key=key)
    return Envelope(
        kind=kind,
        writer=doc["writer"],
        written_at=doc["writtenAt"],
        nonce=doc["nonce"],
        body=doc["body"],
        signature=sig,
    )


def decode_ramen_metadata(data: bytes, *, key: str | None = None) -> Any:
    """Read an object written by Ramen's VRG controller: gzip-compressed JSON (plain JSON also accepted)."""
    raw = data
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                raw = gz.read(MAX_METADATA_BYTES + 1)
        except (OSError, EOFError) as e:
            raise CorruptObject(f"invalid gzip: {e}", key=key) from None
    if len(raw) > MAX_METADATA_BYTES:
        raise CorruptObject(f"metadata over {MAX_METADATA_BYTES} bytes once decompressed", key=key)
    try:
        return strict_json(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptObject(f"metadata is not valid JSON: {e}", key=key) from None


# -- small typed accessors used by the body models -------------------------
#: Generations and sequences must fit Kubernetes' int64 status fields after +1, and stay exact in
#: JSON readers that use doubles: 2**53 is far beyond any real count and below both limits.
MAX_COUNTER = 2**53
#: Free-form strings (nonces, times, versions) are short; a longer one is not ours.
MAX_SHORT_STRING = 256


def req_str(body: Mapping[str, Any], field: str, key: str | None, *, max_len: int = MAX_SHORT_STRING) -> str:
    v = body.get(field)
    if not isinstance(v, str) or not v:
        raise CorruptObject(f"body field {field} must be a non-empty string", key=key)
    if len(v) > max_len:
        raise CorruptObject(f"body field {field} is {len(v)} characters long, over {max_len}", key=key)
    return v


def opt_str(body: Mapping[str, Any], field: str, key: str | None, *, max_len: int = MAX_SHORT_STRING) -> str | None:
    """A field that must be present and either null or a non-empty string."""
    if field not in body:
        raise CorruptObject(f"body lacks {field}", key=key)
    return None if body[field] is None else req_str(body, field, key, max_len=max_len)


def req_int(body: Mapping[str, Any], field: str, key: str | None, *, minimum: int = 0,
            maximum: int = MAX_COUNTER) -> int:
    v = body.get(field)
    # bool is an int subclass in Python; JSON true is not a generation.
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum or v > maximum:
        raise CorruptObject(f"body field {field} must be an integer from {minimum} to {maximum}", key=key)
    return v


_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_label(v: object) -> bool:
    """A DNS-1123 label (what a cluster name is: it becomes a key segment and a status field)."""
    return isinstance(v, str) and len(v) <= 63 and bool(_LABEL_RE.match(v))


def req_label(body: Mapping[str, Any], field: str, key: str | None) -> str:
    v = body.get(field)
    if not is_label(v):
        shown = v[:64] + "..." if isinstance(v, str) and len(v) > 64 else v
        raise CorruptObject(f"body field {field} must be a cluster name (DNS-1123 label), got {shown!r}", key=key)
    assert isinstance(v, str)
    return v


def opt_label(body: Mapping[str, Any], field: str, key: str | None) -> str | None:
    if field not in body:
        raise CorruptObject(f"body lacks {field}", key=key)
    return None if body[field] is None else req_label(body, field, key)
