"""Scenarios 5 to 7: operator crashes at each step, S3 outages, a corrupt dr-state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from e2e import harness
from tests.e2e.conftest import DRPair

DR_STATE = "{ns}/app/dr-state"


def _dr_state(drpair: DRPair) -> dict[str, object] | None:
    try:
        raw = drpair.s3.get_object(Bucket=drpair.env.s3["bucket"], Key=DR_STATE.format(ns=drpair.namespace))
    except drpair.s3.exceptions.NoSuchKey:
        return None
    body: dict[str, object] = json.loads(raw["Body"].read())["body"]
    return body


def _vrg_spec(drpair: DRPair, cluster: str) -> dict[str, object]:
    return dict((drpair.vrg(cluster) or {}).get("spec") or {})


def _own_role(drpair: DRPair, cluster: str) -> str:
    raw = drpair.s3.get_object(Bucket=drpair.env.s3["bucket"],
                               Key=f"{drpair.namespace}/app/cluster-status/{cluster}")
    return str(json.loads(raw["Body"].read())["body"]["role"])


# (action, operator to kill, the step at which it is killed)
STEPS: dict[str, tuple[str, str, Callable[[DRPair], bool]]] = {
    "relocate-source-demoting": ("Relocate", "east", lambda p: _vrg_spec(p, "east").get("replicationState")
                                 == "secondary"),
    # The release is brief (the target takes over within a poll): seeing the next generation
    # means it happened and was missed between two looks, which is still "after the release".
    "relocate-source-released": ("Relocate", "east", lambda p: _own_role(p, "east") == "secondary-ready"
                                 or (_dr_state(p) or {}).get("generation") == 2),
    "relocate-target-transitioned": ("Relocate", "west", lambda p: (_dr_state(p) or {}).get("generation") == 2),
    "failover-target-transitioned": ("Failover", "west", lambda p: (_dr_state(p) or {}).get("generation") == 2),
    "failover-target-promoting": ("Failover", "west", lambda p: _vrg_spec(p, "west").get("replicationState")
                                  == "primary"),
    "failover-old-primary": ("Failover", "east", lambda p: (_dr_state(p) or {}).get("generation") == 2),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_kill_9_at_a_step_then_restart_converges(drpair: DRPair, step: str) -> None:
    action, victim, reached = STEPS[step]
    drpair.protect_on_east()
    for c in ("east", "west"):
        harness.set_action(drpair.clusters[c], drpair.namespace, action, "west")

    def at_step() -> bool:
        try:
            return reached(drpair)
        except Exception:  # the object may not exist yet
            return False

    harness.wait_for(at_step, 60, f"step {step}", drpair.diagnostics)
    drpair.operators[victim].kill()
    time.sleep(1.0)
    drpair.operators[victim].start()
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2 after the crash", timeout=90)
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east Secondary at generation 2 after the crash")
    state = _dr_state(drpair)
    assert state is not None and state["primary"] == "west" and state["generation"] == 2


def _s3_reachable_is(drpair: DRPair, cluster: str, status: str) -> Callable[[], bool]:
    return lambda: harness.condition(drpair.drc(cluster), "S3Reachable").get("status") == status


def test_s3_outage_in_steady_state_freezes_roles_and_recovers(drpair: DRPair) -> None:
    drpair.protect_on_east()
    drpair.env.stop("s3")
    for c in ("east", "west"):
        drpair.wait(_s3_reachable_is(drpair, c, "False"), f"{c} reports S3 unreachable", timeout=60)
    east = drpair.drc("east")
    assert harness.condition(east, "S3Reachable")["reason"] == "S3Unreachable"
    assert harness.ready_for_application(east), "the running Primary keeps its application through an S3 outage"
    assert _vrg_spec(drpair, "east")["replicationState"] == "primary"
    assert _vrg_spec(drpair, "west")["replicationState"] == "secondary"
    drpair.env.start("s3")
    for c in ("east", "west"):
        drpair.wait(_s3_reachable_is(drpair, c, "True"), f"{c} reports S3 reachable again", timeout=60)
    assert drpair.primary_ready("east", 1)


def test_s3_outage_during_failover_promotes_nothing_until_s3_returns(drpair: DRPair) -> None:
    drpair.protect_on_east()
    drpair.operators["east"].kill()  # the Primary's cluster is lost
    drpair.env.stop("s3")
    harness.set_action(drpair.clusters["west"], drpair.namespace, "Failover", "west")
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "S3Reachable").get("status") == "False",
                "west reports S3 unreachable")
    time.sleep(3.0)  # several poll intervals with the action set
    assert _vrg_spec(drpair, "west")["replicationState"] == "secondary", "promoted while S3 was unreachable"
    assert not harness.ready_for_application(drpair.drc("west"))
    drpair.env.start("s3")
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2 once S3 is back", timeout=90)


def test_corrupt_dr_state_stalls_with_a_clear_condition_and_recovers_when_repaired(drpair: DRPair) -> None:
    drpair.protect_on_east()
    key = DR_STATE.format(ns=drpair.namespace)
    bucket = drpair.env.s3["bucket"]
    original = drpair.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    drpair.s3.put_object(Bucket=bucket, Key=key, Body=b'{"apiVersion": "p2p.ramendr.openshift.io/v1", "kind": ')
    # The cluster asked to act reads dr-state at once. (A steady cluster re-reads it on its periodic
    # resync: polling every app's dr-state every cycle would break the O(1) request budget.)
    harness.set_action(drpair.clusters["west"], drpair.namespace, "Failover", "west")
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "Stalled").get("reason") == "CorruptObject",
                "west reports the corrupt dr-state")
    stalled = harness.condition(drpair.drc("west"), "Stalled")
    assert "dr-state" in stalled["message"] and "frozen" in stalled["message"]
    assert harness.condition(drpair.drc("west"), "Ready")["status"] == "False"
    time.sleep(2.0)
    assert _vrg_spec(drpair, "west")["replicationState"] == "secondary", "promoted on a corrupt dr-state"
    assert _vrg_spec(drpair, "east")["replicationState"] == "primary", "a role changed on a corrupt dr-state"
    drpair.s3.put_object(Bucket=bucket, Key=key, Body=original)
    drpair.wait(lambda: drpair.primary_ready("west", 2), "the failover proceeds once dr-state is repaired",
                timeout=60)
    assert harness.condition(drpair.drc("west"), "Stalled")["status"] == "False"
