"""Moving a pair's dr-state from one coordination store into a quorum (reconciler/s3peer/moving.py).

In-memory buckets that answer like S3 (tests/sim/mems3.py). Each cluster has a Coordinator
on the first bucket, with or without the quorum over all three, as its DRPolicy says.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.s3peer import envelope as env
from reconciler.s3peer.errors import CoordinationMoved
from reconciler.s3peer.keys import AppKey, KeySchema
from reconciler.s3peer.models import Action
from reconciler.s3peer.peer import Coordinator
from reconciler.s3peer.quorum import QuorumDRState
from reconciler.s3peer.store import ObjectStore
from tests.sim.mems3 import MemBucket, MemS3Client

APP = AppKey("shop", "cart")
SINGLE_KEY = KeySchema().dr_state(APP)
NAMES = ["s3-shared", "s3-b", "s3-c"]


def _nothing() -> None:
    return None


class Pair:
    def __init__(self) -> None:
        self.buckets = [MemBucket() for _ in NAMES]
        self.crash_after: dict[str, str] = {}  # cluster -> label of the write after which it dies

    def cluster(self, name: str, quorum: bool) -> Coordinator:
        def io(label: str) -> Callable[[], None]:
            if self.crash_after.get(name, "\0") in label:
                def die() -> None:
                    raise SystemExit(f"{name} killed after {label}")
                return die
            return _nothing
        stores = [ObjectStore(MemS3Client(b, name, io, []), "coordination") for b in self.buckets]
        register = QuorumDRState(stores, name, names=NAMES) if quorum else None
        return Coordinator(stores[0], name, quorum=register)

    def single_kind(self) -> str:
        data = self.buckets[0].objects[SINGLE_KEY][0]
        return str(env.decode(data, key=SINGLE_KEY).kind)


def test_the_first_reader_with_a_quorum_moves_the_value_and_the_peer_on_one_store_freezes() -> None:
    pair = Pair()
    east, west = pair.cluster("east", quorum=False), pair.cluster("west", quorum=False)
    assert east.claim_initial(APP).won
    rec = west.read_dr_state(APP)
    assert rec is not None
    assert west.transition(APP, rec, Action.FAILOVER).won  # generation 2, west, on the single store

    east_q = pair.cluster("east", quorum=True)  # east's DRPolicy gains the quorum
    moved = east_q.read_dr_state(APP)
    assert moved is not None and (moved.value.generation, moved.value.primary) == (2, "west")
    assert pair.single_kind() == "DRStateMoved"
    # West still names one store: it reads the marker and freezes, and cannot write there either.
    with pytest.raises(CoordinationMoved, match=r"add the same spec\.s3CoordinationQuorum"):
        west.read_dr_state(APP)
    with pytest.raises(CoordinationMoved):
        east.transition(APP, rec, Action.FAILOVER, reclaim=True)

    west_q = pair.cluster("west", quorum=True)
    again = west_q.read_dr_state(APP)
    assert again is not None and again.nonce == moved.nonce and again.value == moved.value
    # The register now decides: a failover goes through it, and the single store takes no part.
    assert east_q.transition(APP, again, Action.FAILOVER).won
    after = west_q.read_dr_state(APP)
    assert after is not None and (after.value.generation, after.value.primary) == (3, "east")


@pytest.mark.parametrize("dies_after", ["marker", "acceptor"])
def test_a_mover_that_dies_between_the_two_writes_leaves_enough_to_finish(dies_after: str) -> None:
    pair = Pair()
    east = pair.cluster("east", quorum=False)
    assert east.claim_initial(APP).won
    # After the marker (the first PUT of the single-store key), or after the first acceptor PUT.
    pair.crash_after["east"] = f"s3 PUT {SINGLE_KEY}" if dies_after == "marker" else \
        f"s3 PUT {KeySchema().dr_state_acceptor(APP)}"
    with pytest.raises(SystemExit):
        pair.cluster("east", quorum=True).read_dr_state(APP)
    assert pair.single_kind() == "DRStateMoved"
    pair.crash_after.clear()
    rec = pair.cluster("west", quorum=True).read_dr_state(APP)
    assert rec is not None and (rec.value.generation, rec.value.primary) == (1, "east")


def test_a_pair_that_starts_with_a_quorum_keeps_a_single_store_peer_from_claiming() -> None:
    pair = Pair()
    east_q = pair.cluster("east", quorum=True)
    assert east_q.read_dr_state(APP) is None
    assert east_q.claim_initial(APP).won
    assert pair.single_kind() == "DRStateMoved"
    west = pair.cluster("west", quorum=False)  # a DRPolicy left without the quorum
    with pytest.raises(CoordinationMoved):
        west.claim_initial(APP)


def test_after_the_move_the_marker_holds_no_value() -> None:
    pair = Pair()
    east = pair.cluster("east", quorum=False)
    assert east.claim_initial(APP).won
    assert pair.cluster("east", quorum=True).read_dr_state(APP) is not None
    body = env.decode(pair.buckets[0].objects[SINGLE_KEY][0], key=SINGLE_KEY).body
    assert body["state"] is None and body["stores"] == NAMES
