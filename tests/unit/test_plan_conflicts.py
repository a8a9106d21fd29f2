"""Planner decisions for conflicting and withdrawn actions (found by the simulation)."""

from __future__ import annotations

from reconciler.plan.drcontrol import Transition, plan
from reconciler.plan.inputs import VRGView
from tests.unit.test_plan_drcontrol import (
    PRIMARY_READY,
    SECONDARY_READY_VRG,
    Intent,
    drc,
    inp,
    state,
    vrg_state,
    with_co,
)


def test_target_with_relocate_in_spec_fails_over_when_the_primary_asks_failover() -> None:
    co = with_co(state("east", 1), peer_intent=Intent("east", "Failover", "west", 1, 3))
    p = plan(inp("west", drc(action="Relocate", target="west", generation=2), v=SECONDARY_READY_VRG, co=co))
    assert Transition("west", 1, '"etag-1"', "Failover", "east") in p.coordination
    assert "conflicting requests" in p.status["lastAction"]["message"]


def test_failover_in_spec_wins_over_the_peers_relocate_intent() -> None:
    co = with_co(state("east", 1), peer_intent=Intent("east", "Relocate", "west", 1, 3))
    p = plan(inp("west", drc(action="Failover", target="west", generation=2), v=SECONDARY_READY_VRG, co=co))
    assert Transition("west", 1, '"etag-1"', "Failover", "east") in p.coordination


def test_failover_to_self_is_handled_once_the_generation_is_held() -> None:
    # Not ready yet, but holding the role: a later edit must not repeat it.
    assert PRIMARY_READY.live is not None
    waiting = {**PRIMARY_READY.live, "status": {"state": "Unknown"}}
    p = plan(inp("east", drc(action="Failover", target="east", generation=2), v=VRGView(waiting), co=state("east", 2)))
    assert p.status["handledAction"]["action"] == "Failover"
    assert p.status["lastAction"]["result"] == "InProgress"


def test_action_in_progress_that_nobody_asks_for_ends_cancelled() -> None:
    status = {"generation": 1, "currentPrimary": "west",
              "lastAction": {"action": "Relocate", "targetCluster": "east", "result": "InProgress",
                             "startedAt": "2026-11-25T11:59:00Z", "message": "relocate waits"}}
    p = plan(inp("east", drc(status=status), v=SECONDARY_READY_VRG, co=state("west", 1)))
    assert p.status["lastAction"]["result"] == "Cancelled"
    assert vrg_state(p) == "secondary"


def test_superseded_failover_ends_failed_with_the_new_primary_named() -> None:
    status = {"generation": 2, "currentPrimary": "east",
              "handledAction": {"action": "Failover", "targetCluster": "east", "specGeneration": 2},
              "lastAction": {"action": "Failover", "targetCluster": "east", "result": "InProgress",
                             "startedAt": "2026-11-25T11:59:00Z", "message": "waiting"}}
    p = plan(inp("east", drc(action="Failover", target="east", generation=2, status=status),
                 v=PRIMARY_READY, co=state("west", 3)))
    assert p.status["lastAction"]["result"] == "Failed"
    assert "west is Primary at generation 3" in p.status["lastAction"]["message"]
