"""Values read from S3 are bounded before anything acts on them; messages written to the API fit its limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reconciler.api.conditions import MAX_MESSAGE, set_condition
from reconciler.s3peer import CorruptObject
from reconciler.s3peer.envelope import MAX_COUNTER, EnvelopeTooLarge, Kind, decode, encode
from reconciler.s3peer.errors import S3PeerError
from reconciler.s3peer.models import ClusterStatus, DigestEntry, DRIntent, DRState, Health, StorageClasses

NOW = "2026-11-25T12:00:00Z"


def ds(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"primary": "east", "generation": 2, "action": "Failover", "previousPrimary": "west",
                            "intentNonce": None, "changedAt": NOW}
    body.update(over)
    return body


@pytest.mark.parametrize("over, why", [
    ({"primary": "m" * 40_000}, "cluster name"),
    ({"primary": "East"}, "cluster name"),
    ({"primary": "a/b"}, "cluster name"),
    ({"primary": "x" * 64}, "cluster name"),
    ({"previousPrimary": "../etc"}, "cluster name"),
    ({"generation": 2**64}, "integer from 1"),
    ({"generation": MAX_COUNTER + 1}, "integer from 1"),
    ({"generation": True}, "integer from 1"),
    ({"changedAt": "x" * 10_000}, "characters long"),
    ({"intentNonce": "n" * 10_000}, "characters long"),
])
def test_dr_state_out_of_bounds_is_corrupt(over: dict[str, Any], why: str) -> None:
    with pytest.raises(CorruptObject, match=why):
        DRState.from_body(ds(**over))


def test_dr_state_within_bounds_is_accepted() -> None:
    assert DRState.from_body(ds(generation=MAX_COUNTER)).generation == MAX_COUNTER


@pytest.mark.parametrize("parse, body", [
    (DRIntent.from_body, {"action": "Failover", "target": "M" * 300, "baseGeneration": 1, "specGeneration": 1,
                          "requestedAt": NOW}),
    (DRIntent.from_body, {"action": "Failover", "target": "west", "baseGeneration": 2**70, "specGeneration": 1,
                          "requestedAt": NOW}),
    (ClusterStatus.from_body, {"role": "primary", "observedGeneration": -1, "details": {}}),
    (ClusterStatus.from_body, {"role": "primary", "observedGeneration": 2**63, "details": {}}),
    (Health.from_body, {"sequence": 2**64, "operatorVersion": "1", "ready": True}),
    (Health.from_body, {"sequence": 1, "operatorVersion": "v" * 5000, "ready": True}),
    (DigestEntry.from_body, {"statusHash": "h" * 500, "role": "primary", "observedGeneration": 1}),
    (StorageClasses.from_body, {"classes": [{"name": f"c{i}"} for i in range(1001)]}),
])
def test_other_bodies_out_of_bounds_are_corrupt(parse: Any, body: dict[str, Any]) -> None:
    with pytest.raises(CorruptObject):
        parse(body)


def test_envelope_writer_and_nonce_are_bounded() -> None:
    data, _ = encode(Kind.HEALTH, "w" * 300, {"sequence": 1, "operatorVersion": "1", "ready": True},
                     now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(CorruptObject, match="at most"):
        decode(data)


def test_envelope_too_large_is_a_peer_store_error_with_a_reason() -> None:
    # Callers handle S3PeerError on every write path; a ValueError escaped them.
    with pytest.raises(S3PeerError) as e:
        encode(Kind.DIGEST, "east", {"apps": {"x": "y" * (1024 * 1024)}}, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert isinstance(e.value, EnvelopeTooLarge) and e.value.reason == "EnvelopeTooLarge"


def test_condition_messages_are_truncated_to_fit_the_crd() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    conds = set_condition([], "Ready", False, "Bad", "m" * 100_000, now=now)
    assert len(conds[0].message) == MAX_MESSAGE and conds[0].message.endswith("...")
