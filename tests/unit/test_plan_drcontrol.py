"""Table tests of the DRControl planner: every role decision, without I/O."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.plan.drcontrol import Claim, Plan, Transition, WithdrawIntent, WriteIntent, plan
from reconciler.plan.inputs import Coordination, CoordinationError, PlanInput, PolicyView, VRGView
from reconciler.s3peer.models import Action, ClusterStatus, DRIntent, DRState, Role
from reconciler.s3peer.snapshot import PeerHealth

NOW = "2026-11-25T12:00:00Z"
FRESH = PeerHealth(seen=True, stale=False, last_seen=NOW, unchanged_for=5.0, sequence=7, ready=True)
STALE = PeerHealth(seen=True, stale=True, last_seen="2026-11-25T11:00:00Z", unchanged_for=3600.0, sequence=3,
                   ready=True)


def AppStatus(role: str, gen: int, vrg_state: str = "", healthy: bool = False,
              rfa: bool = False) -> ClusterStatus:
    return ClusterStatus(Role(role), gen, {"vrgState": vrg_state, "vrgHealthy": healthy,
                                           "readyForApplication": rfa})


def Intent(cluster: str, action: str, target: str, base: int, spec_gen: int = 0) -> DRIntent:
    del cluster  # the key names the writer; the body does not
    return DRIntent(Action(action), target, base, spec_gen, NOW)


def ds_of(primary: str, gen: int, action: str = "Initial") -> DRState:
    return DRState(primary, gen, Action(action), None, None, NOW)


def drc(action: str = "", target: str = "", preferred: str = "east", generation: int = 1,
        status: dict[str, Any] | None = None, volsync: bool = False, sync: bool = False) -> dict[str, Any]:
    vrg_spec: dict[str, Any] = {
        "replicationType": "sync" if sync else "async",
        "pvcSelector": {"matchLabels": {"app": "busybox"}},
        "s3Profiles": ["s3-shared"],
    }
    if volsync:
        vrg_spec["volSync"] = {"disabled": False}
    return {
        "apiVersion": "ramendr.openshift.io/v1alpha1",
        "kind": "DRControl",
        "metadata": {"name": "app", "namespace": "ns", "generation": generation,
                     "finalizers": ["ramendr.openshift.io/drcontrol-protection"]},
        "spec": {"drPolicyRef": {"name": "pol"}, "preferredCluster": preferred, "vrgSpec": vrg_spec,
                 "action": action, "targetCluster": target},
        "status": status or {},
    }


def vrg(desired: str, state: str = "", data_ready: bool = True, cluster_ready: bool = True,
        protected: bool = True, generation: int = 3, observed: int | None = None,
        prepare_done: bool = False, final_done: bool = False) -> VRGView:
    conds = [
        {"type": "DataReady", "status": str(data_ready), "observedGeneration": generation},
        {"type": "ClusterDataReady", "status": str(cluster_ready), "observedGeneration": generation},
        {"type": "ClusterDataProtected", "status": str(protected), "observedGeneration": generation},
    ]
    return VRGView({
        "metadata": {"name": "app", "namespace": "ns", "generation": generation, "resourceVersion": "7"},
        # A completed final-sync step implies the spec asked for it.
        "spec": {"replicationState": desired, **({"prepareForFinalSync": True} if prepare_done else {}),
                 **({"runFinalSync": True} if final_done else {})},
        "status": {"state": state, "observedGeneration": generation if observed is None else observed,
                   "conditions": conds, "prepareForFinalSyncComplete": prepare_done,
                   "finalSyncComplete": final_done},
    })


PRIMARY_READY = vrg("primary", "Primary")
SECONDARY_READY_VRG = vrg("secondary", "Secondary")


def inp(cluster: str = "east", d: dict[str, Any] | None = None, v: VRGView | None = None,
        co: Coordination | None = None, fenced: bool = False, interval: str = "5m",
        auto_after: float | None = None) -> PlanInput:
    return PlanInput(
        cluster=cluster,
        drcontrol=d or drc(),
        policy=PolicyView(name="pol", found=True, clusters=("east", "west"), scheduling_interval=interval,
                          auto_failover_after=auto_after),
        vrg=v or VRGView(None),
        coordination=co or Coordination(peer_health=FRESH),
        peer_fenced=fenced,
        now=NOW,
    )


def state(primary: str, gen: int, action: str = "Initial") -> Coordination:
    return Coordination(dr_state=ds_of(primary, gen, action), dr_state_etag=f'"etag-{gen}"', peer_health=FRESH)


def cond(p: Plan, ctype: str) -> dict[str, Any]:
    return next(c for c in p.status["conditions"] if c["type"] == ctype)


def vrg_state(p: Plan) -> str | None:
    return None if p.vrg is None else p.vrg["spec"]["replicationState"]


def with_co(co: Coordination, **kw: Any) -> Coordination:
    return Coordination(**{**co.__dict__, **kw})


# -- initial protection ----------------------------------------------------------
def test_preferred_cluster_claims_generation_one_and_creates_no_vrg_before_the_claim() -> None:
    p = plan(inp("east"))
    assert p.coordination == [Claim("east")]
    assert p.vrg is None
    assert p.status["phase"] == "Initializing"
    assert cond(p, "ReadyForApplication")["status"] == "False"


def test_other_cluster_waits_secondary_without_claiming() -> None:
    p = plan(inp("west"))
    assert p.coordination == []
    assert vrg_state(p) == "secondary"
    assert "waiting for east" in cond(p, "Ready")["message"]


def test_without_preferred_cluster_each_tries_to_claim() -> None:
    assert plan(inp("west", drc(preferred=""))).coordination == [Claim("west")]


def test_primary_named_in_dr_state_gets_a_primary_vrg_with_policy_settings() -> None:
    p = plan(inp("east", co=state("east", 1)))
    assert vrg_state(p) == "primary"
    assert p.vrg is not None
    assert p.vrg["spec"]["async"] == {"schedulingInterval": "5m"}
    assert p.vrg["spec"]["pvcSelector"] == {"matchLabels": {"app": "busybox"}}
    assert p.vrg["spec"]["action"] is None  # Initial claims carry no VRG action
    assert cond(p, "ReadyForApplication")["reason"] == "WaitingForVRG"
    assert p.status["currentPrimary"] == "east" and p.status["generation"] == 1


def test_sync_policy_gives_a_sync_block() -> None:
    p = plan(inp("east", drc(sync=True), co=state("east", 1), interval=""))
    assert p.vrg is not None and p.vrg["spec"]["sync"] == {} and p.vrg["spec"]["async"] is None


def test_ready_for_application_only_on_primary_with_ready_vrg() -> None:
    p = plan(inp("east", v=PRIMARY_READY, co=state("east", 1)))
    assert cond(p, "ReadyForApplication")["status"] == "True"
    assert cond(p, "Ready")["status"] == "True"
    assert p.status["phase"] == "Protected"
    assert p.publish == AppStatus("primary", 1, "Primary", True, True)
    w = plan(inp("west", v=SECONDARY_READY_VRG, co=state("east", 1)))
    assert cond(w, "ReadyForApplication")["status"] == "False"
    assert w.publish == AppStatus("secondary", 1, "Secondary", True, False)


def test_vrg_status_for_an_older_generation_is_not_ready() -> None:
    stale_status = vrg("primary", "Primary", generation=4, observed=3)
    p = plan(inp("east", v=stale_status, co=state("east", 1)))
    assert cond(p, "ReadyForApplication")["status"] == "False"
    assert cond(p, "VRGHealthy")["reason"] == "VRGProgressing"


def test_a_vrg_given_a_new_role_is_progressing_without_a_warning_one_that_ignores_it_is_not() -> None:
    healthy = {"conditions": [{"type": "VRGHealthy", "status": "True", "reason": "Secondary", "message": "",
                               "lastTransitionTime": NOW}]}
    promote = plan(inp("west", drc(action="Failover", target="west", status=healthy), v=SECONDARY_READY_VRG,
                       co=state("west", 2, "Failover")))
    assert vrg_state(promote) == "primary"
    assert cond(promote, "VRGHealthy")["reason"] == "VRGProgressing"
    assert not [e for e in promote.events if e.type == "Warning"], promote.events
    # The spec says primary and the VRG, current with it, still reports Secondary: that is trouble.
    stuck = plan(inp("west", drc(action="Failover", target="west"), v=vrg("primary", "Secondary"),
                     co=state("west", 2, "Failover")))
    assert cond(stuck, "VRGHealthy")["reason"] == "VRGNotReady"


def test_a_vrg_being_created_is_progressing_not_missing() -> None:
    p = plan(inp("west", co=state("east", 1)))
    assert vrg_state(p) == "secondary"
    assert cond(p, "VRGHealthy")["reason"] == "VRGProgressing"
    assert not [e for e in p.events if e.type == "Warning"], p.events


def test_the_echo_of_the_vrg_write_changes_no_status() -> None:
    """Between the write that asks a role of the VRG and the VRG's report on it, the status stays put:
    a message that changed on the echo (spec ahead of status) cost a status write per app per action."""
    for cluster, d, before, co in (
            ("west", drc(action="Failover", target="west"), SECONDARY_READY_VRG, state("west", 2, "Failover")),
            ("east", drc(status={"generation": 1, "currentPrimary": "east"}), PRIMARY_READY,
             state("west", 2, "Failover")),
            ("east", drc(), None, state("east", 1))):
        asked = plan(inp(cluster, d, v=before, co=co))
        assert asked.vrg is not None
        want = asked.vrg["spec"]["replicationState"]
        # The VRG as the write left it: the new role in its spec, its status still about the old one.
        echo = vrg(want, before.state if before else "", generation=4, observed=3 if before else 0)
        again = plan(inp(cluster, {**d, "status": asked.status}, v=echo, co=co))
        assert cond(again, "VRGHealthy") == cond(asked, "VRGHealthy"), cluster
        assert again.status == asked.status, cluster


# -- S3 trouble freezes roles ------------------------------------------------------
def test_s3_unreachable_freezes_roles_and_says_why() -> None:
    prev = plan(inp("east", v=PRIMARY_READY, co=state("east", 1))).status
    co = Coordination(error=CoordinationError("Unreachable", "connect timeout"), peer_health=FRESH)
    p = plan(inp("east", drc(status=prev), v=PRIMARY_READY, co=co))
    assert p.vrg is None and p.coordination == []
    assert cond(p, "S3Reachable")["status"] == "False"
    assert cond(p, "S3Reachable")["reason"] == "Unreachable"
    assert cond(p, "ReadyForApplication")["status"] == "True"  # frozen as it was
    assert p.status["phase"] == "Paused"
    # Stalled, so kstatus reads Failed (a wait fails with the cause instead of timing out) ...
    assert (cond(p, "Stalled")["status"], cond(p, "Stalled")["reason"]) == ("True", "Unreachable")
    assert "frozen" in cond(p, "Stalled")["message"]
    # ... and one Warning per app tells the outage, not two.
    assert [e.reason for e in p.events if e.type == "Warning"] == ["Unreachable"]
    back = plan(inp("east", drc(status=p.status), v=PRIMARY_READY, co=state("east", 1)))
    assert cond(back, "Stalled")["status"] == "False"
    messages = [e.message for e in back.events]
    assert any(m.startswith("S3Reachable=True") for m in messages), messages
    assert not any(m.startswith("Stalled=") for m in messages), messages


def test_a_store_of_three_lost_is_named_and_changes_nothing() -> None:
    full = plan(inp("east", v=PRIMARY_READY, co=with_co(state("east", 1), stores=3)))
    assert (cond(full, "S3Reachable")["reason"], cond(full, "S3Reachable")["message"]) == \
        ("Reachable", "all 3 coordination stores answer")
    lost = with_co(state("east", 1), stores=3, stores_unreachable=("site-b (connection refused)",))
    p = plan(inp("east", drc(status=full.status), v=PRIMARY_READY, co=lost))
    s3 = cond(p, "S3Reachable")
    assert (s3["status"], s3["reason"]) == ("True", "MajorityReachable")
    assert s3["message"] == ("2 of 3 coordination stores answer (unreachable: site-b (connection refused)); "
                             "one more lost freezes roles")
    assert cond(p, "ReadyForApplication")["status"] == "True" and p.publish == full.publish
    five = plan(inp("east", v=PRIMARY_READY, co=with_co(lost, stores=5)))
    assert cond(five, "S3Reachable")["message"].endswith("a majority still decides")


def test_corrupt_dr_state_stalls_without_promotion() -> None:
    co = Coordination(error=CoordinationError("CorruptObject", "dr-state is not valid JSON", corrupt=True),
                      peer_intent=Intent("west", "Failover", "east", 1), peer_health=FRESH)
    p = plan(inp("east", drc(action="Failover", target="east"), v=SECONDARY_READY_VRG, co=co))
    assert p.vrg is None and p.coordination == []
    assert cond(p, "Stalled")["status"] == "True" and cond(p, "Stalled")["reason"] == "CorruptObject"


def test_rollback_to_an_older_generation_stalls() -> None:
    seen = {"generation": 3, "currentPrimary": "west"}
    p = plan(inp("east", drc(status=seen), v=SECONDARY_READY_VRG, co=state("east", 2)))
    assert p.vrg is None
    assert cond(p, "Stalled")["reason"] == "StateRollback"


def test_same_generation_with_another_primary_is_a_rollback() -> None:
    seen = {"generation": 2, "currentPrimary": "west"}
    p = plan(inp("east", drc(status=seen), co=state("east", 2)))
    assert cond(p, "Stalled")["reason"] == "StateRollback"


# -- failover -------------------------------------------------------------------------
def test_failover_on_target_with_secondary_vrg_transitions_without_promoting_yet() -> None:
    p = plan(inp("west", drc(action="Failover", target="west"), v=SECONDARY_READY_VRG, co=state("east", 1)))
    assert Transition("west", 1, '"etag-1"', "Failover", "east") in p.coordination
    assert vrg_state(p) == "secondary"
    assert p.status["phase"] == "FailingOver"
    assert p.status["lastAction"]["result"] == "InProgress"


def test_a_failover_carried_out_at_once_writes_no_intent_one_that_waits_does() -> None:
    # The transition is the request and the decision: an intent beside it would be stale once it wins.
    now = plan(inp("west", drc(action="Failover", target="west"), v=SECONDARY_READY_VRG, co=state("east", 1)))
    assert [type(op) for op in now.coordination] == [Transition]
    # Waiting (here for the local VRG), the intent tells the Primary a failover is asked.
    waits = plan(inp("west", drc(action="Failover", target="west"), v=vrg("secondary", "Unknown"),
                     co=state("east", 1)))
    assert waits.coordination == [WriteIntent("Failover", "west", 1, 1)]


def test_failover_works_with_a_stale_peer() -> None:
    co = with_co(state("east", 1), peer_health=STALE)
    p = plan(inp("west", drc(action="Failover", target="west"), v=SECONDARY_READY_VRG, co=co))
    assert any(isinstance(op, Transition) for op in p.coordination)


def test_failover_waits_for_the_local_vrg_to_report_secondary() -> None:
    p = plan(inp("west", drc(action="Failover", target="west"), v=vrg("secondary", "Unknown"),
                 co=state("east", 1)))
    assert not any(isinstance(op, Transition) for op in p.coordination)
    assert "waits for the local VRG" in p.status["lastAction"]["message"]


def test_sync_failover_waits_for_the_peer_to_be_fenced() -> None:
    d = drc(action="Failover", target="west", sync=True)
    p = plan(inp("west", d, v=SECONDARY_READY_VRG, co=state("east", 1), interval=""))
    assert not any(isinstance(op, Transition) for op in p.coordination)
    assert cond(p, "Ready")["reason"] == "WaitingForFence"
    fenced = plan(inp("west", d, v=SECONDARY_READY_VRG, co=state("east", 1), interval="", fenced=True))
    assert any(isinstance(op, Transition) for op in fenced.coordination)


def test_new_primary_promotes_with_the_failover_action_after_reading_its_generation() -> None:
    p = plan(inp("west", drc(action="Failover", target="west"), v=SECONDARY_READY_VRG,
                 co=state("west", 2, "Failover")))
    assert vrg_state(p) == "primary"
    assert p.vrg is not None and p.vrg["spec"]["action"] == "Failover"
    assert not any(isinstance(op, WriteIntent) for op in p.coordination), "the intent is already satisfied"


def test_old_primary_returning_demotes_and_acknowledges_the_new_generation() -> None:
    p = plan(inp("east", drc(status={"generation": 1, "currentPrimary": "east"}), v=PRIMARY_READY,
                 co=state("west", 2, "Failover")))
    assert vrg_state(p) == "secondary"
    assert p.publish is not None and p.publish.role == "secondary" and p.publish.observed_generation == 2
    assert cond(p, "ReadyForApplication")["status"] == "False"


def test_failover_to_the_current_primary_is_a_no_op_reported_as_success() -> None:
    p = plan(inp("east", drc(action="Failover", target="east"), v=PRIMARY_READY, co=state("east", 1)))
    assert not any(isinstance(op, Transition) for op in p.coordination)
    assert p.status["lastAction"]["result"] == "Succeeded"


def test_a_finished_action_is_not_issued_again() -> None:
    done = {"lastAction": {"action": "Failover", "targetCluster": "west", "specGeneration": 1, "result": "Succeeded"},
            "generation": 2, "currentPrimary": "west"}
    p = plan(inp("west", drc(action="Failover", target="west", status=done), v=SECONDARY_READY_VRG,
                 co=state("west", 2, "Failover")))
    assert p.coordination == []


def test_the_cluster_where_the_action_is_set_writes_its_intent_once() -> None:
    d = drc(action="Relocate", target="west")
    p = plan(inp("east", d, v=PRIMARY_READY, co=state("east", 1)))
    assert WriteIntent("Relocate", "west", 1, 1) in p.coordination
    co = with_co(state("east", 1), own_intent=Intent("east", "Relocate", "west", 1, 1))
    assert not any(isinstance(op, WriteIntent) for op in plan(inp("east", d, v=PRIMARY_READY, co=co)).coordination)


def test_unknown_target_fails_the_action() -> None:
    p = plan(inp("east", drc(action="Failover", target="north"), v=PRIMARY_READY, co=state("east", 1)))
    assert p.status["lastAction"]["result"] == "Failed"
    assert "north" in p.status["lastAction"]["message"]


def test_auto_failover_after_the_configured_silence() -> None:
    co = with_co(state("east", 1), peer_health=STALE)
    p = plan(inp("west", v=SECONDARY_READY_VRG, co=co, auto_after=600))
    assert Transition("west", 1, '"etag-1"', "Failover", "east") in p.coordination
    quiet = with_co(state("east", 1), peer_health=PeerHealth(True, True, NOW, 100.0, 3, True))
    waiting = plan(inp("west", v=SECONDARY_READY_VRG, co=quiet, auto_after=600))
    assert waiting.coordination == []
    assert waiting.requeue_after == 500.0, "the planner must wake up when the failover falls due"


# -- relocate ----------------------------------------------------------------------------
PEER_SECONDARY = AppStatus("secondary", 1, "Secondary", True, False)


def relocating(**kw: Any) -> Coordination:
    return with_co(state("east", 1), peer_status=PEER_SECONDARY, **kw)


def test_an_action_set_on_both_clusters_is_said_by_one_intent() -> None:
    d = drc(action="Relocate", target="west")
    peer_asks = with_co(state("east", 1), peer_intent=Intent("west", "Relocate", "west", 1, 1))
    p = plan(inp("east", d, v=PRIMARY_READY, co=peer_asks))
    assert not any(isinstance(op, WriteIntent) for op in p.coordination), "the peer's intent says it already"
    assert p.status["phase"] == "Relocating"
    # The peer withdraws its intent while our spec still asks: ours is written then.
    alone = plan(inp("east", d, v=PRIMARY_READY, co=state("east", 1)))
    assert WriteIntent("Relocate", "west", 1, 1) in alone.coordination
    # A stale peer intent (of an older generation) does not stand in for ours.
    stale = with_co(state("east", 3), peer_intent=Intent("west", "Relocate", "west", 2, 1))
    assert WriteIntent("Relocate", "west", 3, 1) in plan(inp("east", d, v=PRIMARY_READY, co=stale)).coordination


def test_relocate_with_a_stale_peer_waits_and_never_demotes() -> None:
    co = relocating(peer_health=STALE)
    p = plan(inp("east", drc(action="Relocate", target="west"), v=PRIMARY_READY, co=co))
    assert vrg_state(p) == "primary"
    assert cond(p, "PeerConnected")["status"] == "False"
    assert "use action Failover" in cond(p, "PeerConnected")["message"]
    assert not any(isinstance(op, Transition) for op in p.coordination)


def test_relocate_runs_the_final_sync_in_order_then_demotes_then_releases() -> None:
    d = drc(action="Relocate", target="west", volsync=True)
    p1 = plan(inp("east", d, v=PRIMARY_READY, co=relocating()))
    assert p1.vrg is not None and p1.vrg["spec"]["prepareForFinalSync"] is True
    assert p1.vrg["spec"]["runFinalSync"] is None and vrg_state(p1) == "primary"
    assert cond(p1, "ReadyForApplication")["reason"] == "Relocating"

    v2 = vrg("primary", "Primary", prepare_done=True)
    p2 = plan(inp("east", d, v=v2, co=relocating()))
    assert p2.vrg is not None and p2.vrg["spec"]["runFinalSync"] is True and vrg_state(p2) == "primary"

    v3 = vrg("primary", "Primary", prepare_done=True, final_done=True)
    p3 = plan(inp("east", d, v=v3, co=relocating()))
    assert vrg_state(p3) == "secondary"
    assert p3.publish is not None and p3.publish.role == "primary"  # not released before the VRG says Secondary

    v4 = vrg("secondary", "Secondary")
    p4 = plan(inp("east", d, v=v4, co=relocating()))
    assert p4.publish is not None and p4.publish.role == "secondary-ready" and p4.publish.observed_generation == 1
    assert not any(isinstance(op, Transition) for op in p4.coordination)  # the source never writes dr-state


def test_relocate_without_volsync_demotes_directly() -> None:
    p = plan(inp("east", drc(action="Relocate", target="west"), v=PRIMARY_READY, co=relocating()))
    assert vrg_state(p) == "secondary"


def test_relocate_target_waits_for_the_release_then_transitions() -> None:
    d = drc(action="Relocate", target="west")
    waiting = plan(inp("west", d, v=SECONDARY_READY_VRG,
                       co=with_co(state("east", 1), peer_status=AppStatus("primary", 1, "Primary", True, True))))
    assert not any(isinstance(op, Transition) for op in waiting.coordination)
    released = with_co(state("east", 1), peer_status=AppStatus("secondary-ready", 1, "Secondary", True, False))
    p = plan(inp("west", d, v=SECONDARY_READY_VRG, co=released))
    assert Transition("west", 1, '"etag-1"', "Relocate", "east") in p.coordination


def test_a_release_for_an_older_generation_does_not_count() -> None:
    d = drc(action="Relocate", target="west")
    old = with_co(state("east", 3), peer_status=AppStatus("secondary-ready", 2, "Secondary", True, False))
    assert not any(isinstance(op, Transition) for op in plan(inp("west", d, v=SECONDARY_READY_VRG,
                                                                   co=old)).coordination)


def test_relocate_set_only_on_the_target_reaches_the_source_through_the_intent() -> None:
    co = relocating(peer_intent=Intent("west", "Relocate", "west", 1, 4))
    p = plan(inp("east", drc(), v=PRIMARY_READY, co=co))
    assert vrg_state(p) == "secondary"
    stale_intent = relocating(peer_intent=Intent("west", "Relocate", "west", 0, 4))
    assert vrg_state(plan(inp("east", drc(), v=PRIMARY_READY, co=stale_intent))) == "primary"


def test_cancelled_relocate_before_release_promotes_again() -> None:
    p = plan(inp("east", drc(), v=vrg("secondary", "Secondary"), co=relocating()))
    assert vrg_state(p) == "primary"


def test_released_primary_stays_secondary_until_a_new_generation() -> None:
    released = relocating(own_status=AppStatus("secondary-ready", 1, "Secondary", True, False))
    p = plan(inp("east", drc(), v=vrg("secondary", "Secondary"), co=released))
    assert vrg_state(p) == "secondary"
    assert "Failover" in cond(p, "Ready")["message"]
    back = plan(inp("east", drc(action="Failover", target="east", generation=2), v=vrg("secondary", "Secondary"),
                    co=released))
    assert Transition("east", 1, '"etag-1"', "Failover", "east") in back.coordination


# -- invariants over arbitrary inputs ---------------------------------------------------------
vrg_views = st.sampled_from([VRGView(None), PRIMARY_READY, SECONDARY_READY_VRG, vrg("secondary", "Unknown"),
                             vrg("primary", "Primary", data_ready=False), vrg("secondary", "Secondary", observed=1),
                             vrg("primary", "Primary", prepare_done=True, final_done=True)])
statuses = st.none() | st.builds(AppStatus, st.sampled_from(["primary", "secondary", "secondary-ready"]),
                                 st.integers(0, 3), st.just("Secondary"), st.booleans(), st.booleans())
intents = st.none() | st.builds(Intent, st.just("west"), st.sampled_from(["Failover", "Relocate"]),
                                st.sampled_from(["east", "west", "north"]), st.integers(0, 3), st.integers(0, 3))
coordinations = st.builds(
    Coordination,
    error=st.none() | st.just(CoordinationError("Unreachable", "down")) | st.just(
        CoordinationError("CorruptObject", "bad", corrupt=True)),
    dr_state=st.none() | st.builds(ds_of, st.sampled_from(["east", "west"]), st.integers(1, 3),
                                   st.sampled_from(["Initial", "Failover", "Relocate"])),
    dr_state_etag=st.just('"e"'),
    own_status=statuses,
    peer_status=statuses,
    own_intent=st.none(),
    peer_intent=intents,
    peer_health=st.sampled_from([FRESH, STALE, PeerHealth(False, False, None, 0.0, None, None)]),
)
specs = st.builds(drc, action=st.sampled_from(["", "Failover", "Relocate"]),
                  target=st.sampled_from(["", "east", "west"]), preferred=st.sampled_from(["", "east", "west"]),
                  volsync=st.booleans(), sync=st.booleans())


@settings(max_examples=400, deadline=None)
@given(specs, vrg_views, coordinations, st.booleans(), st.sampled_from([None, 60.0]))
def test_planner_invariants(d: dict[str, Any], v: VRGView, co: Coordination, fenced: bool,
                            auto: float | None) -> None:
    p = plan(inp("east", d, v=v, co=co, fenced=fenced, auto_after=auto))
    rfa = cond(p, "ReadyForApplication")["status"] == "True"
    ds = co.dr_state
    if co.error is not None:
        # I3: nothing is created, promoted, demoted or written while S3 cannot be trusted.
        assert p.vrg is None and p.coordination == []
        return
    # I5: ReadyForApplication only on the Primary of the latest generation, with a ready VRG.
    if rfa:
        assert ds is not None and ds.primary == "east" and v.ready_as_primary
    # Promotion only when dr-state names this cluster.
    if vrg_state(p) == "primary":
        assert ds is not None and ds.primary == "east"
    for op in p.coordination:
        if isinstance(op, Transition):
            assert ds is not None and op.primary == "east" and op.from_generation == ds.generation
        if isinstance(op, Claim):
            assert ds is None


def test_dr_state_vanishing_after_it_was_seen_stalls_instead_of_reclaiming() -> None:
    seen = {"generation": 2, "currentPrimary": "east"}
    p = plan(inp("east", drc(status=seen), v=PRIMARY_READY, co=Coordination(peer_health=FRESH)))
    assert p.coordination == [] and p.vrg is None
    assert cond(p, "Stalled")["reason"] == "StateRollback"


def test_a_handled_spec_action_stays_handled_while_the_peer_drives_another() -> None:
    """West finished Relocate->west; east now asks (by intent) to relocate back: west must not flip-flop."""
    done = {"lastAction": {"action": "Relocate", "targetCluster": "east", "result": "InProgress"},
            "handledAction": {"action": "Relocate", "targetCluster": "west"}, "generation": 2,
            "currentPrimary": "west"}
    co = with_co(state("west", 2, "Relocate"), peer_status=AppStatus("secondary", 2, "Secondary", True, False),
                 peer_intent=Intent("east", "Relocate", "east", 2, 5))
    d = drc(action="Relocate", target="west", generation=2, status=done)
    p = plan(inp("west", d, v=PRIMARY_READY, co=co))
    assert vrg_state(p) == "secondary"
    assert p.status["lastAction"]["targetCluster"] == "east"


def test_replication_type_must_match_the_policy() -> None:
    p = plan(inp("east", drc(sync=False), co=state("east", 1), interval=""))
    assert p.vrg is None
    assert cond(p, "Stalled")["reason"] == "ReplicationTypeMismatch"
    assert "needs sync" in cond(p, "Stalled")["message"]


def test_fields_no_longer_wanted_are_removed_from_the_live_vrg() -> None:
    """The applier merges the desired VRG over the live one: removals must be explicit."""
    from reconciler.kube.patch import main_patch, merge, spec_part

    live = vrg("secondary", "Secondary")
    assert live.live is not None
    old = {**live.live, "spec": {**live.live["spec"], "prepareForFinalSync": True, "runFinalSync": True,
                                 "action": "Relocate", "volSync": {"disabled": False},
                                 "pvcSelector": {"matchLabels": {"app": "busybox", "tier": "old"}}}}
    p = plan(inp("east", v=VRGView(old), co=state("east", 3, "Failover")))
    assert p.vrg is not None and main_patch(old, p.vrg)
    result = merge({k: v for k, v in old.items() if k != "status"}, spec_part(p.vrg))["spec"]
    assert result["replicationState"] == "primary" and result["action"] == "Failover"
    for gone in ("prepareForFinalSync", "runFinalSync", "volSync"):
        assert gone not in result, gone
    assert result["pvcSelector"] == {"matchLabels": {"app": "busybox"}}


def test_auto_failover_needs_a_peer_once_heard_and_our_own_heartbeat_getting_through() -> None:
    never_heard = with_co(state("east", 1), peer_health=PeerHealth(False, True, None, 3600.0, None, None))
    assert plan(inp("west", v=SECONDARY_READY_VRG, co=never_heard, auto_after=60)).coordination == []
    co = with_co(state("east", 1), peer_health=STALE)
    blind = PlanInput(**{**inp("west", v=SECONDARY_READY_VRG, co=co, auto_after=60).__dict__,
                         "local_heartbeat_ok": False})
    assert plan(blind).coordination == []


def test_an_intent_already_satisfied_does_not_block_auto_failover() -> None:
    # West failed over earlier (its spec and intent still say Failover->west); now west is silent.
    co = with_co(state("west", 2, "Failover"), peer_health=STALE, peer_intent=Intent("west", "Failover", "west", 2))
    p = plan(inp("east", v=SECONDARY_READY_VRG, co=co, auto_after=60))
    assert Transition("east", 2, '"etag-2"', "Failover", "west") in p.coordination


def test_a_satisfied_or_finished_action_withdraws_its_intent() -> None:
    co = with_co(state("west", 2, "Failover"), own_intent=Intent("west", "Failover", "west", 1, 1))
    done = {"handledAction": {"action": "Failover", "targetCluster": "west"}, "generation": 2,
            "currentPrimary": "west"}
    p = plan(inp("west", drc(action="Failover", target="west", status=done), v=PRIMARY_READY, co=co))
    assert WithdrawIntent() in p.coordination
    assert not any(isinstance(op, WriteIntent) for op in p.coordination)


def test_a_cancelled_relocate_withdraws_its_intent() -> None:
    co = with_co(state("east", 1), own_intent=Intent("west", "Relocate", "west", 1, 3))
    p = plan(inp("west", drc(), v=SECONDARY_READY_VRG, co=co))
    assert p.coordination == [WithdrawIntent()]


def test_after_a_release_the_target_takes_over_even_if_the_relocate_was_withdrawn() -> None:
    released = with_co(state("east", 1), peer_status=AppStatus("secondary-ready", 1, "Secondary", True, False))
    p = plan(inp("west", drc(), v=SECONDARY_READY_VRG, co=released))
    assert Transition("west", 1, '"etag-1"', "Relocate", "east") in p.coordination


def test_an_unrelated_spec_edit_does_not_re_arm_a_finished_action() -> None:
    done = {"handledAction": {"action": "Failover", "targetCluster": "west"}, "generation": 2,
            "currentPrimary": "east"}
    p = plan(inp("west", drc(action="Failover", target="west", generation=7, status=done), v=SECONDARY_READY_VRG,
                 co=state("east", 3, "Relocate")))
    assert not any(isinstance(op, Transition) for op in p.coordination)


def test_clearing_the_action_forgets_it_so_it_can_be_asked_again() -> None:
    done = {"handledAction": {"action": "Failover", "targetCluster": "west"}, "generation": 2,
            "currentPrimary": "east"}
    p = plan(inp("west", drc(status=done), v=SECONDARY_READY_VRG, co=state("east", 3, "Relocate")))
    assert "handledAction" not in p.status


def test_a_final_sync_once_started_is_not_undone_by_a_status_that_lags() -> None:
    d = drc(action="Relocate", target="west", volsync=True)
    asked = vrg("primary", "Primary", generation=4, observed=3)  # status still for the spec before the request
    assert asked.live is not None
    asked = VRGView({**asked.live, "spec": {**asked.live["spec"], "prepareForFinalSync": True}})
    p = plan(inp("east", d, v=asked, co=relocating()))
    assert p.vrg is not None and p.vrg["spec"]["prepareForFinalSync"] is True


def test_completion_flags_count_only_for_the_spec_that_asked_for_them() -> None:
    d = drc(action="Relocate", target="west", volsync=True)
    stale = vrg("primary", "Primary", generation=5, observed=4, prepare_done=True, final_done=True)
    p = plan(inp("east", d, v=stale, co=relocating()))
    assert vrg_state(p) == "primary", "demoted on a final-sync report for an older spec"


def test_an_automatic_failover_is_reported_through_to_success() -> None:
    started = {"lastAction": {"action": "Failover", "targetCluster": "west", "result": "InProgress",
                              "startedAt": NOW}, "generation": 1, "currentPrimary": "east"}
    co = with_co(state("west", 2, "Failover"), peer_health=STALE)
    p = plan(inp("west", drc(status=started), v=PRIMARY_READY, co=co, auto_after=60))
    assert p.status["lastAction"]["result"] == "Succeeded"
    assert "handledAction" not in p.status  # nothing in the spec to mark as handled


# -- beside Ramen's real VRG controller ----------------------------------------------
def test_ramen_server_defaults_in_the_vrg_spec_are_left_alone() -> None:
    """Ramen writes empty defaults into the VRG spec; removing them would fight it generation after generation."""
    from reconciler.kube.patch import main_patch

    live = PRIMARY_READY.live
    assert live is not None
    first = plan(inp("east", v=PRIMARY_READY, co=state("east", 1))).vrg
    assert first is not None
    defaulted = {**first, "status": live["status"], "spec": {
        **{k: v for k, v in first["spec"].items() if v is not None},
        "async": {**first["spec"]["async"], "volumeSnapshotClassSelector": {},
                  "volumeGroupSnapshotClassSelector": {}},
        "volSync": {}}}
    again = plan(inp("east", v=VRGView(defaulted), co=state("east", 1))).vrg
    assert again is not None
    assert main_patch(defaulted, again) == []


def test_a_stated_selector_still_replaces_ramens_empty_default() -> None:
    from reconciler.kube.patch import main_patch

    first = plan(inp("east", co=state("east", 1))).vrg
    assert first is not None
    defaulted = {**first, "spec": {**{k: v for k, v in first["spec"].items() if v is not None},
                                   "volSync": {}, "async": {"schedulingInterval": "1m",
                                                            "volumeSnapshotClassSelector": {}}}}
    again = plan(inp("east", drc(volsync=True), v=VRGView(defaulted), co=state("east", 1))).vrg
    assert again is not None
    ops = {op["path"]: op.get("value") for op in main_patch(defaulted, again)}
    assert ops == {"/spec/async/schedulingInterval": "5m", "/spec/volSync/disabled": False}


def serving(gen: int = 1, primary: str = "east") -> dict[str, Any]:
    """The DRControl status of a Primary that had ReadyForApplication at `gen`."""
    return {"currentPrimary": primary, "generation": gen, "conditions": [
        {"type": "ReadyForApplication", "status": "True", "reason": "DataReady", "message": "",
         "lastTransitionTime": NOW, "observedGeneration": 1}]}


def test_a_pvc_joining_a_serving_primary_keeps_ready_for_application() -> None:
    """Ramen's VRG reports state Unknown and DataReady False while a new PVC is protected."""
    joining = vrg("primary", "Unknown", data_ready=False)
    p = plan(inp("east", drc(status=serving(1)), v=joining, co=state("east", 1)))
    rfa = cond(p, "ReadyForApplication")
    assert rfa["status"] == "True" and rfa["reason"] == "Serving"
    assert "VRGHealthy" in rfa["message"]
    assert cond(p, "VRGHealthy")["status"] == "False" and "Unknown" in cond(p, "VRGHealthy")["message"]
    assert cond(p, "Ready")["status"] == "False" and cond(p, "Ready")["reason"] == "WaitingForVRG"
    assert vrg_state(p) == "primary"


def test_ready_for_application_is_not_held_across_a_generation_or_role_change() -> None:
    joining = vrg("primary", "Unknown", data_ready=False)
    # Primary again, but at a new generation (failed over away and back): it must wait for the VRG.
    p = plan(inp("east", drc(status=serving(1)), v=joining, co=state("east", 3, "Failover")))
    assert cond(p, "ReadyForApplication")["status"] == "False"
    # No longer the Primary: withdrawn at once, whatever the VRG says.
    w = plan(inp("east", drc(status=serving(1)), v=PRIMARY_READY, co=state("west", 2, "Failover")))
    assert cond(w, "ReadyForApplication")["status"] == "False"
    assert cond(w, "ReadyForApplication")["reason"] == "NotPrimary"


def test_a_primary_that_never_was_ready_is_not_made_ready_by_the_hold() -> None:
    never = {"currentPrimary": "east", "generation": 1, "conditions": [
        {"type": "ReadyForApplication", "status": "False", "reason": "WaitingForVRG", "message": "",
         "lastTransitionTime": NOW, "observedGeneration": 1}]}
    p = plan(inp("east", drc(status=never), v=vrg("primary", "Unknown", data_ready=False), co=state("east", 1)))
    assert cond(p, "ReadyForApplication")["status"] == "False"


def test_a_relocate_whose_source_vrg_will_not_demote_says_why() -> None:
    """Ramen's VRG holds a VolRep PVC the application still uses; the DRControl must say so, not wait silently."""
    blocked = VRGView({
        "metadata": {"name": "app", "namespace": "ns", "generation": 4},
        "spec": {"replicationState": "secondary"},
        "status": {"state": "Unknown", "observedGeneration": 4, "conditions": [
            {"type": "DataReady", "status": "False", "reason": "Progressing", "observedGeneration": 4,
             "message": "VolumeReplicationGroup is progressing"},
            {"type": "ClusterDataReady", "status": "True", "reason": "Unused", "observedGeneration": 4,
             "message": ""}],
            "protectedPVCs": [{"name": "data", "conditions": [
                {"type": "DataReady", "status": "False", "reason": "Progressing", "observedGeneration": 4,
                 "message": "unable to transition to Secondary as PVC is not deleted"}]}]}})
    p = plan(inp("east", drc("Relocate", "west"), v=blocked, co=state("east", 1)))
    assert vrg_state(p) == "secondary" and p.status["phase"] == "Relocating"
    healthy = cond(p, "VRGHealthy")
    assert healthy["status"] == "False"
    assert "PVC data: unable to transition to Secondary as PVC is not deleted" in healthy["message"]
    assert cond(p, "ReadyForApplication")["reason"] == "Relocating"


def test_events_tell_trouble_its_end_and_the_applications_go_not_every_condition() -> None:
    first = plan(inp("west", v=SECONDARY_READY_VRG, co=state("east", 1)))
    reasons = {(e.type, e.reason) for e in first.events}
    # The phase change rides on the Event that tells why: no PhaseChanged beside PrimaryChanged.
    assert ("Normal", "PrimaryChanged") in reasons and ("Normal", "PhaseChanged") not in reasons
    primary = next(e for e in first.events if e.reason == "PrimaryChanged")
    assert primary.message.endswith(f"(phase (none) -> {first.status['phase']})"), primary
    # Ready, Reconciling and a healthy VRG just follow the phase: no Event of their own.
    assert not {r for _, r in reasons} & {"Secondary", "Idle"}, first.events
    # Trouble, and its end, are news.
    co = Coordination(error=CoordinationError("S3Unreachable", "connect timeout"), peer_health=FRESH)
    frozen = plan(inp("west", drc(status=first.status), v=SECONDARY_READY_VRG, co=co))
    assert ("Warning", "S3Unreachable") in {(e.type, e.reason) for e in frozen.events}
    back = plan(inp("west", drc(status=frozen.status), v=SECONDARY_READY_VRG, co=state("east", 1)))
    assert any(e.type == "Normal" and e.message.startswith("S3Reachable=True") for e in back.events), back.events
    # The application's go on the Primary is news.
    ready = plan(inp("east", v=PRIMARY_READY, co=state("east", 1)))
    assert any(e.message.startswith("ReadyForApplication=True") for e in ready.events)
