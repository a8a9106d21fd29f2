"""The planner on inputs that are well-formed but make no sense: it says so instead of waiting silently."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.plan.drcontrol import plan
from tests.unit.test_plan_drcontrol import FRESH, PRIMARY_READY, cond, drc, inp, state, vrg_state, with_co


@pytest.mark.parametrize("cluster", ["east", "west"])
def test_preferred_cluster_outside_the_policy_stalls_with_a_reason(cluster: str) -> None:
    p = plan(inp(cluster, drc(preferred="mallory")))
    assert p.coordination == []
    assert p.vrg is None  # nothing created or changed on a guess
    stalled = cond(p, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidPreferredCluster"
    assert "mallory" in stalled["message"] and "east" in stalled["message"]


def test_preferred_cluster_repaired_goes_on_to_claim() -> None:
    assert plan(inp("east", drc(preferred="mallory"))).coordination == []
    assert plan(inp("east", drc(preferred="east"))).coordination != []


def test_corrupt_peer_object_is_shown_without_changing_roles() -> None:
    co = with_co(state("east", 1), peer_health=dataclasses.replace(FRESH, corrupt="CorruptObject: not valid JSON"))
    p = plan(inp("east", v=PRIMARY_READY, co=co))
    assert vrg_state(p) == "primary"
    pc = cond(p, "PeerConnected")
    assert pc["status"] == "False" and pc["reason"] == "PeerObjectCorrupt" and "not valid JSON" in pc["message"]
    assert cond(p, "ReadyForApplication")["status"] == "True"
