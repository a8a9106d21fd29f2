"""Digest and status bodies, content hashing, and peer-health tracking on the monotonic clock."""

from __future__ import annotations

import pytest

from reconciler.s3peer import (
    AppKey,
    ClusterStatus,
    CorruptObject,
    Digest,
    DigestEntry,
    Health,
    Record,
    Role,
    assess,
    content_hash,
    observe_heartbeat,
    start_tracking,
)

A, B = AppKey("ns", "a"), AppKey("ns", "b")


def test_content_hash_ignores_key_order_and_sees_any_change() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert len(content_hash({})) == 16


def test_status_hash_follows_content() -> None:
    s1 = ClusterStatus(Role.SECONDARY, 3, {"dataReady": True})
    assert s1.content_hash() == ClusterStatus(Role.SECONDARY, 3, {"dataReady": True}).content_hash()
    assert s1.content_hash() != ClusterStatus(Role.SECONDARY_READY, 3, {"dataReady": True}).content_hash()
    assert s1.content_hash() != ClusterStatus(Role.SECONDARY, 4, {"dataReady": True}).content_hash()


def test_digest_round_trip() -> None:
    d = Digest(
        apps={A: DigestEntry("h1", Role.PRIMARY, 2), B: DigestEntry(None, Role.UNKNOWN, 0, intent_hash="i1")},
        storage_classes_hash="sc",
    )
    body = d.to_body()
    assert body["apps"]["ns/a"] == {"statusHash": "h1", "role": "primary", "observedGeneration": 2}
    assert Digest.from_body(body) == d


@pytest.mark.parametrize(
    "body",
    [{}, {"apps": []}, {"apps": {"no-slash": {}}}, {"apps": {"ns/a": {"statusHash": "h", "role": "boss",
                                                                   "observedGeneration": 1}}},
     {"apps": {"ns/a": {"statusHash": "h", "role": "primary", "observedGeneration": -1}}},
     {"apps": {}, "storageClassesHash": 5}],
)
def test_bad_digests_are_corrupt(body: dict[str, object]) -> None:
    with pytest.raises(CorruptObject):
        Digest.from_body(body)


def _hb(seq: int, at: str) -> Record[Health]:
    return Record(Health(seq, "0.1.0", True), etag=f'"{seq}"', nonce=str(seq), writer="west", written_at=at)


def test_never_seen_peer_turns_stale_only_after_stale_after() -> None:
    t = start_tracking(100.0)
    assert not assess(t, 100.0 + 179, 180).stale
    h = assess(t, 100.0 + 181, 180)
    assert h.stale and not h.seen and h.last_seen is None


def test_changed_heartbeat_resets_the_clock_and_sets_last_seen() -> None:
    t = start_tracking(0.0)
    t = observe_heartbeat(t, '"1"', _hb(1, "2026-01-01T00:00:00Z"), 10.0)
    t = observe_heartbeat(t, '"2"', _hb(2, "2026-01-01T00:01:00Z"), 70.0)
    h = assess(t, 240.0, 180)
    assert h.seen and not h.stale and h.sequence == 2 and h.last_seen == "2026-01-01T00:01:00Z"
    assert h.unchanged_for == pytest.approx(170.0)


def test_unchanged_heartbeat_goes_stale_on_the_local_clock() -> None:
    t = observe_heartbeat(start_tracking(0.0), '"1"', _hb(1, "2099-01-01T00:00:00Z"), 5.0)
    # The same ETag read again much later is no sign of life, whatever its writtenAt says.
    t = observe_heartbeat(t, '"1"', _hb(1, "2099-01-01T00:00:00Z"), 300.0)
    assert assess(t, 300.0, 180).stale


def test_corrupt_but_changing_heartbeat_still_counts_as_alive() -> None:
    t = observe_heartbeat(start_tracking(0.0), '"x"', None, 200.0, corrupt="CorruptObject")
    h = assess(t, 210.0, 180)
    assert not h.stale and h.corrupt == "CorruptObject"


def test_vanished_heartbeat_does_not_reset_the_clock() -> None:
    t = observe_heartbeat(start_tracking(0.0), '"1"', _hb(1, "2026-01-01T00:00:00Z"), 0.0)
    t2 = observe_heartbeat(t, None, None, 100.0)
    assert t2 == t
