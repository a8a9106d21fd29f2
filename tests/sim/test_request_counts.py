"""What one step of the real controller costs and says, in the simulated world.

The simulation's checks say a step is safe; these say it does not pay for reads it does not
need (each request is paid per app, at a thousand apps per action), and that its Events tell
what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.api import DRCONTROL
from reconciler.controllers.drcontrol import NUDGE_POLL_GAP
from reconciler.controllers.nudge import NUDGE_ANNOTATION
from reconciler.s3peer import AppKey
from tests.sim.memkube import ListRecorder
from tests.sim.scenarios import rounds
from tests.sim.world import APP, KEY, NS, POLL, PROFILE, Variant, World

APP_KEY = AppKey(NS, APP)


def counting(world: World, cluster: str) -> list[str]:
    """Every S3 request `cluster` makes from now on, as "s3 VERB key"."""
    seen: list[str] = []
    for store in world.nodes[cluster].stores:
        inner = store._io

        def hook(label: str, inner: Callable[[str], Callable[[], None]] = inner) -> Callable[[], None]:
            seen.append(label)
            return inner(label)
        store._io = hook
    return seen


def test_the_intent_of_a_relocate_is_written_after_one_dr_state_read() -> None:
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    seen = counting(world, "west")
    world.step(("user", "west", "Relocate", "west"))
    world.step(("reconcile", "west"))
    assert any(s.startswith("s3 PUT") and "/dr-intent/west" in s for s in seen), seen
    assert [s for s in seen if s.startswith("s3 GET") and s.endswith("/dr-state")] == ["s3 GET ns/app/dr-state"], seen
    assert not world.checker.violations


def nudge(world: World, cluster: str, token: str) -> None:
    """The peer's nudge: an annotation on the DRControl (what PeerNudger patches)."""
    node = world.nodes[cluster]
    drc = node.server.get(DRCONTROL, APP, NS)
    assert drc is not None
    drc["metadata"].setdefault("annotations", {})[NUDGE_ANNOTATION] = token
    node.server.write(DRCONTROL, drc, None)
    node.cache.sync()


def test_a_nudge_before_its_shared_poll_waits_for_it_instead_of_reading_s3() -> None:
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    world.step(("poll", "west"))  # the last poll began now: the next may not for NUDGE_POLL_GAP
    world.step(("tick", 0.1))
    seen = counting(world, "west")
    nudge(world, "west", "1")
    ctl = world.nodes["west"].controller
    assert ctl is not None
    result = ctl.reconcile(KEY)
    assert seen == [], "planned from the snapshot the nudge says is old"
    assert result is not None and 0 < (result.requeue_after or 0) <= NUDGE_POLL_GAP
    world.step(("tick", NUDGE_POLL_GAP))
    world.step(("reconcile", "west"))
    assert any("cluster-info/east" in s for s in seen), f"the nudge's poll was not taken: {seen}"
    assert any(s.endswith("/dr-state") for s in seen), seen
    assert not world.checker.violations


def test_a_nudge_left_from_before_the_operator_started_is_not_waited_for() -> None:
    # A site coming back finds every app nudged while it was away: its first poll reads what those
    # nudges told, so its first reconcile of each app plans at once instead of waiting for a poll.
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    world.kill("west")
    nudge(world, "west", "sent-while-west-was-down")
    world.start("west")
    ctl = world.nodes["west"].controller
    assert ctl is not None
    # As the operator starts, its DRPolicy controller sets up the peering, and the first poll runs:
    # the next poll may not be for a while.
    ctl.peerings.get(PROFILE, "east", ())
    world.step(("poll", "west"))
    world.step(("tick", 0.1))
    seen = counting(world, "west")
    result = ctl.reconcile(KEY)
    assert any(s.endswith("/dr-state") for s in seen), f"deferred instead of planning: {seen}"
    assert result is None or not 0 < (result.requeue_after or 0) <= NUDGE_POLL_GAP
    nudge(world, "west", "a-new-one")  # a nudge after that first look is news again
    world.step(("poll", "west"))
    world.step(("tick", 0.1))
    result = ctl.reconcile(KEY)
    assert result is not None and 0 < (result.requeue_after or 0) <= NUDGE_POLL_GAP
    assert not world.checker.violations


def test_the_events_of_a_step_that_re_planned_tell_the_change_from_the_stored_status() -> None:
    # A failover transitions, then re-plans from the new generation: the plan before the write was
    # never stored, so its phase must not appear as where the app came from.
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    ctl = world.nodes["west"].controller
    assert ctl is not None and isinstance(ctl.events, ListRecorder)
    before = world.drcontrol("west")
    assert before is not None
    stored_phase = before["status"]["phase"]
    ctl.events.events.clear()
    world.step(("user", "west", "Failover", "west"))
    world.step(("reconcile", "west"))
    after = world.drcontrol("west")
    assert after is not None and after["status"]["generation"] == 2
    phase = f"phase {stored_phase} -> {after['status']['phase']}"
    assert [m for _, _, m in ctl.events.events if "phase " in m] == \
        [f"primary is west at generation 2 ({phase})"], ctl.events.events


def test_a_new_relocate_looks_at_the_peer_as_it_is_now_not_as_the_last_poll_saw_it() -> None:
    # The target's report changed after the source's last poll (here: its VRG was unhealthy for a
    # moment; in the benchmark, a return that had just finished). A relocate asked right then must
    # not wait a poll interval on the old picture of the target.
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    world.run([("vrg_degrade", "west"), ("reconcile", "west"), ("poll", "east"),
               ("vrg", "west"), ("reconcile", "west"), ("tick", 0.5)])
    # The source's last poll began 0.5 s ago, before the target's report changed.
    ctl = world.nodes["east"].controller
    assert ctl is not None
    seen = counting(world, "east")
    world.step(("user", "east", "Relocate", "west"))
    result = ctl.reconcile(KEY)
    # Polls of one peer are NUDGE_POLL_GAP apart (a thousand relocates asked at once share them):
    # the first reconcile waits for the next one instead of planning on the old picture.
    assert seen == [] and result is not None and 0 < (result.requeue_after or 0) <= NUDGE_POLL_GAP, (seen, result)
    world.step(("tick", NUDGE_POLL_GAP))
    world.step(("reconcile", "east"))
    vrg = world.vrg("east")
    assert vrg is not None and vrg["spec"]["replicationState"] == "secondary", \
        f"the relocate waited on a snapshot older than the request: {world.drcontrol('east')}"
    assert any("cluster-info/west" in s for s in seen), seen
    # The reconciles that follow (the VRG reporting back) share that poll instead of taking their own.
    world.step(("vrg", "east"))
    before = len([s for s in seen if "cluster-info/west" in s])
    world.step(("reconcile", "east"))
    assert len([s for s in seen if "cluster-info/west" in s]) == before, seen
    assert not world.checker.violations


def test_a_routine_reconcile_after_a_peer_report_at_the_held_generation_reads_no_dr_state() -> None:
    # A peer report queues its app as routine (Manager._peer_changes): it tells what the peer did,
    # not that dr-state changed. A report of the peer's VRG health needs no dr-state read here.
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    world.run([("vrg_degrade", "west"), ("reconcile", "west"), ("tick", POLL), ("poll", "east")])
    seen = counting(world, "east")
    world.step(("resync", "east"))
    assert not [s for s in seen if s.endswith("/dr-state")], seen
    drc = world.drcontrol("east")
    assert drc is not None and drc["status"]["peerStatus"]["vrgHealthy"] is False, "the report was not taken in"
    assert not world.checker.violations


def test_a_routine_reconcile_that_finds_the_peer_at_a_later_generation_reads_dr_state() -> None:
    # West failed over while east still held generation 1. West's report at generation 2 says
    # dr-state moved on: planning from the held generation would keep east's VRG primary until a
    # rotating check came round to the app (hours at a thousand apps).
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    world.run([("user", "west", "Failover", "west"), ("reconcile", "west"), ("vrg", "west"),
               ("reconcile", "west"), ("tick", POLL), ("poll", "east")])
    seen = counting(world, "east")
    world.step(("resync", "east"))
    assert "s3 GET ns/app/dr-state" in seen, seen
    vrg = world.vrg("east")
    assert vrg is not None and vrg["spec"]["replicationState"] == "secondary", vrg
    assert not world.checker.violations


def test_a_removed_protection_leaves_nothing_of_its_app_in_the_controllers_memory() -> None:
    world = World(1, Variant(preferred="east"))
    world.run(rounds())
    ctl = world.nodes["east"].controller
    assert ctl is not None and APP_KEY in ctl._nudges_seen
    for _ in range(6):  # both clusters let go: VRGs deleted, keys removed, finalizers dropped
        for c in ("east", "west"):
            world.run([("delete", c), ("reconcile", c), ("vrg", c), ("reconcile", c)])
        world.step(("tick", 2))
    assert world.drcontrol("east") is None and world.drcontrol("west") is None
    memories: dict[str, Mapping[AppKey, object]] = {
        "nudges seen": ctl._nudges_seen, "own intents": ctl._own_intents, "PSK checks": ctl._psk_checked,
        "confirmed releases": ctl._confirmed_releases, "applications": ctl._applications,
        "relocates asked": ctl._relocates_asked}
    assert {name for name, memory in memories.items() if APP_KEY in memory} == set()
    assert not world.checker.violations
