"""The digest is written from parts kept between writes: the bytes must be exactly what encoding
the whole body writes, through any sequence of changes, signed or not, and read back the same."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.s3peer import AppKey, Digest, DigestEntry, Role
from reconciler.s3peer import envelope as env
from reconciler.s3peer.models import DigestBodyEncoder

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
KEY = b"k" * 32

names = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?", fullmatch=True)
apps = st.builds(AppKey, names, names)
hashes = st.none() | st.text("0123456789abcdef", min_size=16, max_size=16)
entries = st.builds(DigestEntry, hashes, st.sampled_from(list(Role)), st.integers(0, 10**6), hashes)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=8)


def _whole_envelope(kind: env.Kind, body: dict[str, Any], nonce: str, key: bytes | None) -> bytes:
    """The envelope as one canonical_json of the whole document (how it was always written)."""
    doc: dict[str, Any] = {"apiVersion": env.API_VERSION, "kind": str(kind), "writer": "east",
                           "writtenAt": env.format_time(NOW), "nonce": nonce, "body": body}
    if key:
        doc["signature"] = env.SIGNATURE_SCHEME + hmac.new(key, env.canonical_json(doc), hashlib.sha256).hexdigest()
    return env.canonical_json(doc)


@settings(max_examples=200, deadline=None)
@given(body=st.dictionaries(st.text(max_size=6), json_values, max_size=5), signed=st.booleans())
def test_an_envelope_from_a_canonical_body_is_the_envelope_of_the_whole_document(
        body: dict[str, Any], signed: bool) -> None:
    key = KEY if signed else None
    data, nonce = env.encode(env.Kind.CLUSTER_STATUS, "east", body, now=NOW, hmac_key=key)
    assert data == _whole_envelope(env.Kind.CLUSTER_STATUS, body, nonce, key)
    assert env.decode(data, hmac_key=key).body == json.loads(env.canonical_json(body))


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.dictionaries(apps, entries, max_size=6), st.lists(apps, max_size=3),
                                hashes), min_size=1, max_size=8))
def test_the_digest_body_is_the_canonical_json_of_the_whole_digest_after_any_changes(
        steps: list[tuple[dict[AppKey, DigestEntry], list[AppKey], str | None]]) -> None:
    encoder = DigestBodyEncoder()
    current: dict[AppKey, DigestEntry] = {}
    for changed, removed, sch in steps:
        current.update(changed)
        for a in removed:
            current.pop(a, None)
        got = encoder.body_json(current, sch)
        assert got == env.canonical_json(Digest(apps=dict(current), storage_classes_hash=sch).to_body())


def test_a_signed_digest_written_from_parts_reads_back_as_the_digest() -> None:
    encoder = DigestBodyEncoder()
    d = {AppKey("ns", f"app-{i}"): DigestEntry(f"{i:016x}", Role.PRIMARY, i) for i in range(50)}
    encoder.body_json(d, None)
    d[AppKey("ns", "app-7")] = DigestEntry("f" * 16, Role.SECONDARY, 8, intent_hash="e" * 16)
    del d[AppKey("ns", "app-3")]
    data, _ = env.encode_canonical_body(env.Kind.DIGEST, "east", encoder.body_json(d, "sc"), now=NOW, hmac_key=KEY)
    back = Digest.from_body(env.decode(data, expected_kind=env.Kind.DIGEST, hmac_key=KEY).body)
    assert back == Digest(apps=d, storage_classes_hash="sc")
