"""dr-state over three stores in the two-cluster simulation: the schedules of the quorum feature.

Store 0 holds the acceptor of one site and the other coordination objects; stores 1 and 2 hold
the other acceptors (the second site's bucket and a witness). The random schedules of
test_simulation.py run this variant too (about 3 in 10); these name the cases it exists for.
"""

from __future__ import annotations

from tests.sim.checks import _cond
from tests.sim.scenarios import rounds
from tests.sim.world import Event, Variant, World

QUORUM = Variant(preferred="east", quorum=True)


def run(events: list[Event], variant: Variant = QUORUM) -> World:
    w = World(0, variant)
    w.run(events)
    assert not w.checker.violations, w.checker.violations
    return w


def vrg_state(w: World, c: str) -> str:
    return str(((w.vrg(c) or {}).get("spec") or {}).get("replicationState"))


def test_failover_goes_through_the_two_stores_left_when_a_site_is_lost_with_its_store() -> None:
    # East (the Primary) dies with store 0, which also holds the other coordination objects.
    w = run([*rounds(), ("crash", "east"), ("store", 0, "down"), ("s3", "east", "down"),
             ("user", "west", "Failover", "west"), *[e for e in rounds(4) if e[1:2] != ("east",)]])
    assert vrg_state(w, "west") == "primary"
    assert _cond(w.drcontrol("west"), "ReadyForApplication") == "True"
    st = (w.drcontrol("west") or {}).get("status") or {}
    assert st.get("generation") == 2 and st.get("currentPrimary") == "west"
    peer = next(c for c in st.get("conditions", []) if c["type"] == "PeerConnected")
    assert peer["reason"] == "CoordinationStoreUnreachable", peer
    # East and its store come back: east demotes and both settle.
    w.run([("store", 0, "up"), ("s3", "east", "up"), ("restart", "east"), *rounds(4)])
    w.settle()
    assert not w.checker.violations, w.checker.violations
    assert vrg_state(w, "east") == "secondary"


def test_the_same_loss_freezes_a_single_store_pair() -> None:
    # Without a quorum the lost store held dr-state itself: the survivor cannot take over.
    w = run([*rounds(), ("crash", "east"), ("s3", "west", "down"), ("user", "west", "Failover", "west"),
             *[e for e in rounds(4) if e[1:2] != ("east",)]], Variant(preferred="east"))
    assert vrg_state(w, "west") == "secondary"
    assert _cond(w.drcontrol("west"), "S3Reachable") == "False"


def test_a_cluster_reaching_one_store_of_three_freezes_its_roles() -> None:
    w = run([*rounds(), ("store", 1, "down"), ("store", 2, "down"), ("user", "west", "Failover", "west"),
             *rounds(3)])
    assert vrg_state(w, "east") == "primary" and vrg_state(w, "west") == "secondary"
    assert _cond(w.drcontrol("west"), "S3Reachable") == "False"


def test_relocate_needs_only_the_store_of_the_other_objects_and_a_majority() -> None:
    # The witness is gone: a planned relocate still completes, losing nothing.
    w = run([*rounds(), ("store", 2, "down"), ("user", "east", "Relocate", "west"),
             ("user", "west", "Relocate", "west"), *rounds(8)])
    assert vrg_state(w, "west") == "primary" and vrg_state(w, "east") == "secondary"
    assert _cond(w.drcontrol("west"), "ReadyForApplication") == "True"


def test_one_store_restored_from_an_old_backup_is_outvoted() -> None:
    w = run([*rounds(), ("user", "west", "Failover", "west"), *rounds(3), ("rollback_drstate",), *rounds(3)])
    st = (w.drcontrol("east") or {}).get("status") or {}
    assert _cond(w.drcontrol("east"), "Stalled") != "True"
    assert st.get("currentPrimary") == "west" and vrg_state(w, "west") == "primary"


# -- moving a pair from one store to three ------------------------------------------------------
MOVING = Variant(preferred="east", migrate=True)


def reason(w: World, c: str, ctype: str) -> str:
    st = (w.drcontrol(c) or {}).get("status") or {}
    return next((str(x.get("reason")) for x in st.get("conditions", []) if x["type"] == ctype), "")


def test_a_move_started_on_one_cluster_freezes_the_other_until_its_policy_follows() -> None:
    w = run([*rounds(), ("migrate", "east"), *rounds(1), ("user", "west", "Failover", "west"), *rounds(2)],
            MOVING)
    # West still names one store: it reads the marker, freezes, and its failover waits.
    assert reason(w, "west", "S3Reachable") == "CoordinationMoved"
    assert vrg_state(w, "west") == "secondary" and vrg_state(w, "east") == "primary"
    w.run([("migrate", "west"), *rounds(4)])
    assert not w.checker.violations, w.checker.violations
    st = (w.drcontrol("west") or {}).get("status") or {}
    assert (st.get("generation"), st.get("currentPrimary")) == (2, "west") and vrg_state(w, "west") == "primary"
    assert reason(w, "west", "S3Reachable") == "Reachable"


def test_a_mover_killed_between_the_marker_and_the_register_is_finished_by_the_peer() -> None:
    w = run([*rounds(), ("migrate", "east"), ("migrate", "west"), ("arm", "east", 1, "after", "PUT ns/app/dr-state"),
             ("reconcile", "east"), *[e for e in rounds(2) if e[1:2] != ("east",)]], MOVING)
    assert w.nodes["east"].controller is None  # killed after the marker
    st = (w.drcontrol("west") or {}).get("status") or {}
    assert (st.get("generation"), st.get("currentPrimary")) == (1, "east")
    w.run([("restart", "east"), *rounds(3)])
    w.settle()
    assert not w.checker.violations, w.checker.violations
    assert vrg_state(w, "east") == "primary"


def test_after_the_move_a_failover_needs_only_two_of_the_three_stores() -> None:
    w = run([*rounds(), ("migrate", "west"), ("migrate", "east"), *rounds(2), ("crash", "east"),
             ("store", 0, "down"), ("s3", "east", "down"), ("user", "west", "Failover", "west"),
             *[e for e in rounds(4) if e[1:2] != ("east",)]], MOVING)
    assert vrg_state(w, "west") == "primary"
    assert _cond(w.drcontrol("west"), "ReadyForApplication") == "True"
