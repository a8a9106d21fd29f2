"""Envelope: strict decoding, size limit, nonce, HMAC signature, Ramen gzip metadata."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from reconciler.s3peer import (
    API_VERSION,
    MAX_OBJECT_BYTES,
    CorruptObject,
    EnvelopeTooLarge,
    Kind,
    SignatureInvalid,
    decode,
    decode_ramen_metadata,
    encode,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
KEY = b"shared-secret"


def _doc(**over: object) -> bytes:
    doc: dict[str, object] = {
        "apiVersion": API_VERSION, "kind": "DRState", "writer": "east",
        "writtenAt": "2026-11-25T12:00:00Z", "nonce": "n-1", "body": {"x": 1},
    }
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_round_trip_keeps_every_field() -> None:
    data, nonce = encode(Kind.DR_STATE, "east", {"primary": "east"}, now=NOW)
    e = decode(data, expected_kind=Kind.DR_STATE)
    assert (e.kind, e.writer, e.written_at, e.nonce, e.body) == (
        Kind.DR_STATE, "east", "2026-11-25T12:00:00Z", nonce, {"primary": "east"})
    assert e.signature is None


def test_each_encode_gets_a_fresh_nonce_unless_given() -> None:
    _, a = encode(Kind.HEALTH, "east", {}, now=NOW)
    _, b = encode(Kind.HEALTH, "east", {}, now=NOW)
    assert a != b
    _, c = encode(Kind.HEALTH, "east", {}, now=NOW, nonce="fixed")
    assert c == "fixed"


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"a": NaN}',
        _doc(apiVersion="p2p.ramendr.openshift.io/v2"),
        _doc(kind="Mystery"),
        _doc(body=...),
        _doc(nonce=...),
        _doc(writer=5),
        _doc(nonce=""),
        _doc(body=[1]),
        _doc(writtenAt="yesterday"),
        _doc(extra="field"),
        _doc(signature="md5:abc"),
    ],
    ids=["garbage", "not-utf8", "array", "nan", "unknown-version", "unknown-kind", "no-body", "no-nonce",
         "writer-not-string", "empty-nonce", "body-not-object", "bad-time", "unknown-field", "bad-signature-format"],
)
def test_malformed_envelopes_are_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptObject):
        decode(data)


def test_duplicate_json_keys_are_corrupt() -> None:
    raw = _doc().replace(b'"writer": "east"', b'"writer": "east", "writer": "west"')
    with pytest.raises(CorruptObject, match="duplicate"):
        decode(raw)


def test_wrong_kind_for_the_key_is_corrupt() -> None:
    data, _ = encode(Kind.HEALTH, "east", {}, now=NOW)
    with pytest.raises(CorruptObject, match="kind"):
        decode(data, expected_kind=Kind.DR_STATE)


def test_object_over_one_mib_is_corrupt_on_read_and_refused_on_write() -> None:
    big = b" " * (MAX_OBJECT_BYTES - len(_doc()) + 1) + _doc()
    assert len(big) == MAX_OBJECT_BYTES + 1
    with pytest.raises(CorruptObject, match="limit"):
        decode(big)
    with pytest.raises(EnvelopeTooLarge):
        encode(Kind.DIGEST, "east", {"pad": "x" * MAX_OBJECT_BYTES}, now=NOW)


def test_object_of_exactly_the_limit_is_accepted() -> None:
    exact = b" " * (MAX_OBJECT_BYTES - len(_doc())) + _doc()
    assert len(exact) == MAX_OBJECT_BYTES
    assert decode(exact).writer == "east"


def test_signed_object_verifies_with_the_key() -> None:
    data, _ = encode(Kind.DR_STATE, "east", {"g": 1}, now=NOW, hmac_key=KEY)
    e = decode(data, hmac_key=KEY)
    assert e.signature is not None and e.signature.startswith("hmac-sha256:")


def test_wrong_key_is_signature_invalid() -> None:
    data, _ = encode(Kind.DR_STATE, "east", {"g": 1}, now=NOW, hmac_key=KEY)
    with pytest.raises(SignatureInvalid):
        decode(data, hmac_key=b"other")


def test_tampered_body_is_signature_invalid() -> None:
    data, _ = encode(Kind.DR_STATE, "east", {"primary": "east"}, now=NOW, hmac_key=KEY)
    tampered = data.replace(b'"primary":"east"', b'"primary":"west"')
    assert tampered != data
    with pytest.raises(SignatureInvalid):
        decode(tampered, hmac_key=KEY)


def test_unsigned_object_is_invalid_when_a_key_is_configured() -> None:
    data, _ = encode(Kind.DR_STATE, "east", {}, now=NOW)
    with pytest.raises(SignatureInvalid, match="unsigned"):
        decode(data, hmac_key=KEY)


def test_signature_invalid_is_a_corrupt_object_with_its_own_reason() -> None:
    assert issubclass(SignatureInvalid, CorruptObject)
    assert SignatureInvalid.reason == "SignatureInvalid" and CorruptObject.reason == "CorruptObject"


def test_signed_object_is_readable_without_a_key() -> None:
    data, _ = encode(Kind.DR_STATE, "east", {}, now=NOW, hmac_key=KEY)
    assert decode(data).writer == "east"


def test_ramen_gzip_metadata_is_read_as_is() -> None:
    vrg = {"kind": "VolumeReplicationGroup", "metadata": {"name": "web"}}
    assert decode_ramen_metadata(gzip.compress(json.dumps(vrg).encode())) == vrg
    assert decode_ramen_metadata(json.dumps(vrg).encode()) == vrg


def test_broken_gzip_metadata_is_corrupt() -> None:
    with pytest.raises(CorruptObject):
        decode_ramen_metadata(b"\x1f\x8b\x08garbage")
    with pytest.raises(CorruptObject):
        decode_ramen_metadata(gzip.compress(b"{not json"))
