"""dr-state against the real S3 server: claims, transitions, the ambiguous 412, deletion."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.s3peer import (
    Action,
    AppKey,
    Coordinator,
    CorruptObject,
    KeySchema,
    ObjectStore,
    PreconditionFailed,
    SeenState,
    check_rollback,
)

pytestmark = pytest.mark.realenv
APP = AppKey("shop", "web")


@pytest.fixture
def store(s3_settings: dict[str, str]) -> ObjectStore:
    return ObjectStore.from_settings(s3_settings)


@pytest.fixture
def east(store: ObjectStore, key_prefix: str) -> Coordinator:
    return Coordinator(store, "east", keys=KeySchema(key_prefix))


@pytest.fixture
def west(store: ObjectStore, key_prefix: str) -> Coordinator:
    return Coordinator(store, "west", keys=KeySchema(key_prefix))


def test_no_dr_state_reads_as_none(east: Coordinator) -> None:
    assert east.read_dr_state(APP) is None


def test_initial_claim_creates_generation_one(east: Coordinator, west: Coordinator, s3: Any) -> None:
    out = east.claim_initial(APP)
    assert out.won and out.current is not None and not out.resolved_by_nonce
    seen = west.read_dr_state(APP)
    assert seen is not None
    assert (seen.value.primary, seen.value.generation, seen.value.action) == ("east", 1, Action.INITIAL)
    assert seen.etag == out.current.etag and seen.nonce == out.current.nonce and seen.writer == "east"
    head = s3.head_object(Bucket=east.store.bucket, Key=east.keys.dr_state(APP))
    assert head["ETag"] == out.current.etag


def test_second_initial_claim_loses_and_reports_the_winner(east: Coordinator, west: Coordinator) -> None:
    assert east.claim_initial(APP).won
    out = west.claim_initial(APP)
    assert not out.won and out.current is not None and out.current.value.primary == "east"


def test_failover_then_relocate_back(east: Coordinator, west: Coordinator) -> None:
    g1 = east.claim_initial(APP).current
    assert g1 is not None
    fo = west.transition(APP, g1, Action.FAILOVER, intent_nonce="intent-1")
    assert fo.won and fo.current is not None
    assert (fo.current.value.primary, fo.current.value.generation, fo.current.value.previous_primary,
            fo.current.value.intent_nonce) == ("west", 2, "east", "intent-1")
    g2 = east.read_dr_state(APP)
    assert g2 is not None and g2.value == fo.current.value
    back = east.transition(APP, g2, Action.RELOCATE)
    assert back.won and back.current is not None and back.current.value.generation == 3
    assert back.current.value.action == Action.RELOCATE


def test_transition_from_a_stale_read_loses(east: Coordinator, west: Coordinator, store: ObjectStore,
                                            key_prefix: str) -> None:
    g1 = east.claim_initial(APP).current
    assert g1 is not None
    assert west.transition(APP, g1, Action.FAILOVER).won
    # A third party still holding generation 1 cannot overwrite generation 2.
    south = Coordinator(store, "south", keys=KeySchema(key_prefix))
    out = south.transition(APP, g1, Action.FAILOVER)
    assert not out.won and out.current is not None
    assert (out.current.value.primary, out.current.value.generation) == ("west", 2)


def test_transition_to_self_when_already_primary_is_refused(east: Coordinator) -> None:
    g1 = east.claim_initial(APP).current
    assert g1 is not None
    with pytest.raises(ValueError):
        east.transition(APP, g1, Action.RELOCATE)


def test_ambiguous_412_on_initial_claim_resolves_by_nonce(east: Coordinator) -> None:
    # The first attempt succeeded but its response was lost; the retry carries the same nonce.
    first = east.claim_initial(APP, nonce="nonce-A")
    assert first.won
    retry = east.claim_initial(APP, nonce="nonce-A")
    assert retry.won and retry.resolved_by_nonce
    assert retry.current is not None and retry.current.etag == first.current.etag  # type: ignore[union-attr]


def test_ambiguous_412_on_transition_resolves_by_nonce(east: Coordinator, west: Coordinator) -> None:
    g1 = east.claim_initial(APP).current
    assert g1 is not None
    first = west.transition(APP, g1, Action.FAILOVER, nonce="nonce-T")
    assert first.won
    retry = west.transition(APP, g1, Action.FAILOVER, nonce="nonce-T")
    assert retry.won and retry.resolved_by_nonce
    assert retry.current is not None and retry.current.value.generation == 2


def test_412_with_another_nonce_is_not_mistaken_for_a_win(east: Coordinator, west: Coordinator) -> None:
    assert east.claim_initial(APP, nonce="east-nonce").won
    out = west.claim_initial(APP, nonce="west-nonce")
    assert not out.won and not out.resolved_by_nonce


def test_successful_put_retried_by_botocore_is_resolved(s3_settings: dict[str, str], key_prefix: str) -> None:
    """A real retry: botocore is told the first successful PUT needs retrying, the retry gets 412."""
    store = ObjectStore.from_settings(s3_settings)
    me = Coordinator(store, "east", keys=KeySchema(key_prefix))
    statuses: list[int] = []

    def force_one_retry(response: Any, operation: Any, **_: Any) -> int | None:
        if response is None or operation.name != "PutObject":
            return None
        statuses.append(response[0].status_code)
        return 0 if len(statuses) == 1 else None  # retry once, immediately

    store.client.meta.events.register_first("needs-retry.s3.PutObject", force_one_retry)
    out = me.claim_initial(APP)
    assert statuses == [200, 412]
    assert out.won and out.resolved_by_nonce
    assert out.current is not None and out.current.value.primary == "east"


def test_delete_dr_state_only_deletes_the_version_read(east: Coordinator, west: Coordinator) -> None:
    g1 = east.claim_initial(APP).current
    assert g1 is not None
    assert west.transition(APP, g1, Action.FAILOVER).won
    with pytest.raises(PreconditionFailed):
        east.delete_dr_state(APP, g1)
    current = east.read_dr_state(APP)
    assert current is not None and current.value.generation == 2
    east.delete_dr_state(APP, current)
    assert east.read_dr_state(APP) is None


def test_recreated_dr_state_trips_the_rollback_guard(east: Coordinator, west: Coordinator) -> None:
    g1 = east.claim_initial(APP).current
    assert g1 is not None
    g2 = west.transition(APP, g1, Action.FAILOVER).current
    assert g2 is not None
    seen = SeenState(g2.value.generation, g2.value.primary)
    west.delete_dr_state(APP, g2)
    assert check_rollback(seen, None) is not None
    # Someone re-creates generation 1: the cluster that saw generation 2 refuses it.
    assert east.claim_initial(APP).won
    again = west.read_dr_state(APP)
    assert again is not None
    r = check_rollback(seen, again.value)
    assert r is not None and r.reason == "StateRollback"


def test_cached_read_sees_a_peer_transition(east: Coordinator, west: Coordinator) -> None:
    g1 = east.claim_initial(APP).current
    assert g1 is not None
    assert east.read_dr_state(APP) == g1  # cached, answered by a 304
    assert west.transition(APP, g1, Action.FAILOVER).won
    now = east.read_dr_state(APP)
    assert now is not None and now.value.primary == "west"


def test_corrupt_dr_state_raises_and_is_not_overwritten_by_a_claim(east: Coordinator, s3: Any) -> None:
    key = east.keys.dr_state(APP)
    s3.put_object(Bucket=east.store.bucket, Key=key, Body=b'{"apiVersion": "nope"}')
    with pytest.raises(CorruptObject):
        east.read_dr_state(APP)
    # An initial claim never replaces an existing object, corrupt or not; the 412's re-read reports it.
    with pytest.raises(CorruptObject):
        east.claim_initial(APP)
    assert s3.get_object(Bucket=east.store.bucket, Key=key)["Body"].read() == b'{"apiVersion": "nope"}'
