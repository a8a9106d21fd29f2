"""The DRControl planner: (spec, local VRG, S3 view, clock) -> Plan. Pure; no I/O.

The rules, level-triggered (protocol.md):
- dr-state `(P, G)` decides roles: P's VRG is primary, the other's secondary.
  No dr-state: the claimer (preferredCluster, else whoever tries first)
  creates generation 1; everyone else waits Secondary.
- S3 unreachable, dr-state corrupt, or a generation older than one already
  seen: roles freeze. Nothing is created, promoted or demoted.
- Only the cluster that becomes Primary writes a transition, always as
  `G+1` with `If-Match` on the version it read (the shell does the CAS), and
  it promotes only after re-reading a dr-state that names it.
- Failover to T: T's VRG reports Secondary (and, for a synchronous policy,
  the peer is fenced); T takes G+1.
- Relocate to T: the Primary S runs the final sync, demotes, waits for its
  VRG to report Secondary, then publishes `secondary-ready` at G ("released").
  T takes G+1 only after it reads that. Final-sync stages are read off the live
  VRG spec and only move forward; completion flags count only for the spec
  that asked for them.
- Cancelling (clearing the action, which withdraws the intent): before the
  release, S promotes again and T cannot move. A release is a commitment: T
  takes G+1 even if the relocate was withdrawn meanwhile, since S will not
  promote at G again. Only a new generation moves S back: a Failover to S
  bumps G, so a late relocate CAS by T fails.
- A relocate never becomes a failover by itself; with a stale peer it waits.
- An action is live when set in this cluster's spec and not finished, or when
  the peer's intent names the current generation and asks for something not
  yet true. "Finished" is remembered by content (status.handledAction): an
  unrelated spec edit does not re-arm it; clearing the action forgets it.
  An action recorded as in progress is seen through to its result even when
  its source (a peer intent, automatic failover) is gone.
- Automatic failover (opt-in) acts like a Failover to self once the peer was
  heard and then stayed silent for the configured time, counted only while we
  can see S3 and while our own heartbeat gets through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.kube.jsoncopy import json_copy
from reconciler.kube.patch import replacing
from reconciler.plan import volsync
from reconciler.plan.application import desired_kustomization, flux_template, stop_problem
from reconciler.plan.inputs import PRIMARY, SECONDARY, Coordination, PlanInput, VRGView, dig
from reconciler.plan.status import Event, StatusBuilder
from reconciler.s3peer import pvcs
from reconciler.s3peer.drstate import STATE_ROLLBACK_REASON, SeenState, check_rollback
from reconciler.s3peer.models import Action, ClusterStatus, DRState, Role

FAILOVER, RELOCATE = Action.FAILOVER.value, Action.RELOCATE.value
VRG_API_VERSION = "ramendr.openshift.io/v1alpha1"
FINALIZER = "ramendr.openshift.io/drcontrol-protection"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ramen-p2p"

IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELLED = "Cancelled"

# Phases, as `kubectl get drcontrol` shows them.
INITIALIZING = "Initializing"
PROTECTING = "Protecting"
PROTECTED = "Protected"
FAILING_OVER = "FailingOver"
RELOCATING = "Relocating"
PAUSED = "Paused"


# -- plan output --------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """Create dr-state generation 1 naming this cluster (If-None-Match: *)."""

    primary: str


@dataclass(frozen=True)
class Transition:
    """Replace dr-state generation `from_generation` (If-Match `etag`) with `(primary, from_generation+1)`."""

    primary: str
    from_generation: int
    etag: str
    action: str
    previous_primary: str


@dataclass(frozen=True)
class WriteIntent:
    action: str
    target: str
    base_generation: int
    spec_generation: int


@dataclass(frozen=True)
class WithdrawIntent:
    """Delete this cluster's dr-intent."""


CoordinationOp = Claim | Transition | WriteIntent | WithdrawIntent


@dataclass
class Plan:
    # Writes that change coordination state; the shell re-plans after them.
    coordination: list[CoordinationOp] = field(default_factory=list)
    # This cluster's cluster-status for the app (the store skips unchanged content).
    publish: ClusterStatus | None = None
    # The desired VRG object, or None to leave the VRG alone (absent or frozen).
    vrg: dict[str, Any] | None = None
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    # The VolSync PSK Secret to create or keep in the app namespace (its name), or None.
    volsync_secret: str | None = None
    # spec.application.fluxKustomization is set: the Kustomization to exist (or None: delete it).
    manages_application: bool = False
    kustomization: dict[str, Any] | None = None


@dataclass(frozen=True)
class ActiveAction:
    action: str
    target: str
    source: str  # "spec", "peer" or "auto"
    spec_generation: int | None = None
    # The two clusters asked for different things; what was chosen is in action/target.
    conflict: str = ""


# -- helpers over the DRControl dict -----------------------------------------
def _seconds_between(start: str, end: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    try:
        return max(0.0, (dt.datetime.strptime(end, fmt) - dt.datetime.strptime(start, fmt)).total_seconds())
    except ValueError:
        return 0.0


LAST_SEEN_REFRESH = 300.0
FLUX_KUSTOMIZATION = "FluxKustomization"
# Seconds between looks at an owned Kustomization on its way in or out (Flux prunes in seconds).
APPLICATION_RECHECK = 2.0


def _coarse_last_seen(previous: str | None, latest: str) -> str:
    """Refresh lastSeen only every few minutes: a status write per heartbeat per app would load the API server."""
    if previous and _seconds_between(previous, latest) < LAST_SEEN_REFRESH:
        return previous
    return latest


def _generation(drc: Mapping[str, Any]) -> int:
    return int(dig(drc, "metadata", "generation") or 0)


def _peer_of(inp: PlanInput) -> str:
    others = [c for c in inp.policy.clusters if c != inp.cluster]
    return others[0] if others else ""


def _spec_action(inp: PlanInput) -> ActiveAction | None:
    """The action in this cluster's spec, unless it was already finished.

    Finished is remembered by content (status.handledAction): an unrelated spec edit must
    not re-arm an old Failover. Clearing the action forgets it, so clear-then-set issues
    the same action again.
    """
    drc = inp.drcontrol
    action = dig(drc, "spec", "action") or ""
    if not action:
        return None
    target = str(dig(drc, "spec", "targetCluster") or "")
    gen = _generation(drc)
    handled = dig(drc, "status", "handledAction") or {}
    last = dig(drc, "status", "lastAction") or {}
    if (handled.get("action") == action and handled.get("targetCluster") == target) or (
        last.get("specGeneration") == gen
        and last.get("result") in (SUCCEEDED, FAILED)
        and last.get("action") == action
        and last.get("targetCluster") == target
    ):
        return None
    return ActiveAction(action, target, "spec", gen)


def _live_peer_intent(inp: PlanInput, ds: DRState | None) -> ActiveAction | None:
    """The peer's intent, when it names the current generation and asks for what does not hold yet."""
    pi = inp.coordination.peer_intent
    if ds is not None and pi is not None and pi.base_generation == ds.generation and pi.target != ds.primary:
        return ActiveAction(str(pi.action), pi.target, "peer")
    return None


def effective_action(inp: PlanInput, ds: DRState | None) -> ActiveAction | None:
    """What this cluster works towards: its own spec's action, else the peer's live intent, else
    an automatic failover that is due.

    Conflicting requests for the same target (a Relocate on one cluster, a Failover on the
    other) resolve to the Failover on both clusters: the Failover needs only the target, while
    the Relocate would wait for a final sync the other side no longer runs.
    """
    own = _spec_action(inp)
    peer = _live_peer_intent(inp, ds)
    if own is not None:
        if (peer is not None and own.action == RELOCATE and peer.action == FAILOVER
                and own.target == peer.target):
            return ActiveAction(FAILOVER, peer.target, "peer", conflict=f"{RELOCATE} here, {FAILOVER} on the peer")
        if (peer is not None and own.action == FAILOVER and peer.action == RELOCATE
                and own.target == peer.target):
            return ActiveAction(FAILOVER, own.target, "spec", own.spec_generation,
                                conflict=f"{FAILOVER} here, {RELOCATE} on the peer")
        return own
    if peer is not None:
        return peer
    if ds is not None and auto_failover_due(inp, ds) == 0:
        return ActiveAction(FAILOVER, inp.cluster, "auto")
    return None


def auto_failover_due(inp: PlanInput, ds: DRState) -> float | None:
    """Seconds until an automatic failover to this cluster is due (0: now); None when it never is.

    Only a peer that was heard and then fell silent counts, and only while this cluster's own
    heartbeat is getting through: our own trouble with S3 is not the peer's failure.
    """
    after = inp.policy.auto_failover_after
    health = inp.coordination.peer_health
    if after is None or ds.primary != _peer_of(inp) or not health.seen or not inp.local_heartbeat_ok:
        return None
    return max(0.0, after - health.unchanged_for)


def _unfinished(inp: PlanInput, ds: DRState) -> ActiveAction | None:
    """An action recorded as in progress whose target now holds the role: it is seen through to Succeeded.

    Actions from the peer's intent or from automatic failover have no spec to remind the
    planner of them once dr-state moved on; lastAction does.
    """
    last = dig(inp.drcontrol, "status", "lastAction") or {}
    if last.get("result") == IN_PROGRESS and last.get("targetCluster") == ds.primary and last.get("action"):
        return ActiveAction(str(last["action"]), ds.primary, "recorded", last.get("specGeneration"))
    return None


def _released(inp: PlanInput, ds: DRState) -> bool:
    """This cluster, still named Primary, has handed generation G over (relocate demotion done)."""
    own = inp.coordination.own_status
    return own is not None and own.role == Role.SECONDARY_READY and own.observed_generation == ds.generation


def _needs_final_sync(inp: PlanInput) -> bool:
    vrg_spec = dig(inp.drcontrol, "spec", "vrgSpec") or {}
    if vrg_spec.get("replicationType", "async") != "async":
        return False
    volsync = vrg_spec.get("volSync")
    return isinstance(volsync, Mapping) and not volsync.get("disabled", False)


# -- the desired VRG -----------------------------------------------------------
def desired_vrg(
    inp: PlanInput, state: str, action: str = "", prepare_final_sync: bool = False, run_final_sync: bool = False
) -> dict[str, Any]:
    """The VRG Ramen expects, built on the live object so fields owned by others survive.

    The applier reads it as a merge patch over the live VRG, so every field we own is
    stated: what we no longer want is None (removed), and each owned sub-object replaces
    the live one whole (a dropped selector label or final-sync flag must not linger).
    """
    drc = inp.drcontrol
    name, ns = dig(drc, "metadata", "name"), dig(drc, "metadata", "namespace")
    vrg_spec: Mapping[str, Any] = dig(drc, "spec", "vrgSpec") or {}
    live: dict[str, Any] = json_copy(dict(inp.vrg.live)) if inp.vrg.live is not None else {
        "apiVersion": VRG_API_VERSION,
        "kind": "VolumeReplicationGroup",
        "metadata": {"name": name, "namespace": ns},
    }
    live.pop("status", None)  # the VRG controller owns the status; never write it back
    meta = live.setdefault("metadata", {})
    meta.setdefault("labels", {})[MANAGED_BY_LABEL] = MANAGED_BY
    sync = vrg_spec.get("replicationType", "async") == "sync"
    async_block: dict[str, Any] | None = None
    if not sync:
        async_block = {"schedulingInterval": inp.policy.scheduling_interval}
        if inp.policy.replication_class_selector:
            async_block["replicationClassSelector"] = json_copy(dict(inp.policy.replication_class_selector))
        if inp.policy.volume_snapshot_class_selector:
            async_block["volumeSnapshotClassSelector"] = json_copy(
                dict(inp.policy.volume_snapshot_class_selector))
    owned: dict[str, Any] = {
        "replicationState": state,
        "pvcSelector": json_copy(vrg_spec.get("pvcSelector") or {}),
        "s3Profiles": list(vrg_spec.get("s3Profiles") or []),
        "sync": {} if sync else None,
        "async": async_block,
        "volSync": json_copy(volsync.with_rd_spec(vrg_spec.get("volSync"), inp, state)),
        "kubeObjectProtection": json_copy(vrg_spec.get("kubeObjectProtection")),
        "action": action or None,
        "prepareForFinalSync": True if prepare_final_sync else None,
        "runFinalSync": True if run_final_sync else None,
    }
    spec: dict[str, Any] = dict(live.get("spec") or {})
    # Ramen's VRG controller writes these empty defaults into the spec; they mean what their
    # absence means, so removing them would only start a write-for-write fight over the VRG.
    for path in VRG_SERVER_DEFAULTS:
        *parents, leaf = path
        want, have = owned, spec
        for key in parents:
            want, have = want.get(key) or {}, have.get(key) or {}
        if isinstance(want, dict) and isinstance(have, dict) and want.get(leaf) is None and have.get(leaf) == {}:
            want[leaf] = {}
    for key, value in owned.items():
        spec[key] = replacing(spec.get(key), value)
    live["spec"] = spec
    return live


# Spec fields Ramen defaults to `{}` (paths in the VRG spec); `{}` there equals not stating them.
VRG_SERVER_DEFAULTS: tuple[tuple[str, ...], ...] = (
    ("volSync",),
    ("async", "volumeSnapshotClassSelector"),
    ("async", "volumeGroupSnapshotClassSelector"),
)


# -- the planner ---------------------------------------------------------------
class _Planner:
    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.me = inp.cluster
        self.peer = _peer_of(inp)
        self.gen = _generation(inp.drcontrol)
        self.sb = StatusBuilder(dig(inp.drcontrol, "status"), self.gen, inp.now)
        self.plan = Plan()
        self.last_action: dict[str, Any] | None = None
        self.stalled = False
        self.pvcs_unpublished = False  # the VolSync PVC list was too large to publish

    # status pieces ---------------------------------------------------------
    def _peer_status(self) -> None:
        co = self.inp.coordination
        ps: dict[str, Any] = {"clusterName": self.peer, "stale": co.peer_health.stale}
        if co.peer_status is not None:
            ps["role"] = str(co.peer_status.role)
            ps["vrgHealthy"] = bool(co.peer_status.details.get("vrgHealthy"))
        if co.peer_health.last_seen:
            ps["lastSeen"] = _coarse_last_seen(dig(self.inp.drcontrol, "status", "peerStatus", "lastSeen"),
                                               co.peer_health.last_seen)
        self.sb.status["peerStatus"] = ps
        health = co.peer_health
        if co.advice_problem:
            self.sb.condition("PeerConnected", False, "CoordinationStoreUnreachable",
                              f"{co.advice_problem}; dr-state answers through the quorum: planned relocation "
                              "waits, failover is possible")
        elif not health.seen:
            self.sb.condition("PeerConnected", False, "PeerNeverSeen",
                              f"no heartbeat from {self.peer} in the coordination store yet")
        elif health.stale:
            self.sb.condition("PeerConnected", False, "PeerStale",
                              f"the heartbeat of {self.peer} has not changed recently (last seen {health.last_seen});"
                              " planned relocation waits, failover is possible")
        elif health.corrupt:
            self.sb.condition("PeerConnected", False, "PeerObjectCorrupt",
                              f"an object {self.peer} published cannot be used ({health.corrupt}); planned "
                              "relocation waits until it is repaired, failover is possible")
        else:
            self.sb.condition("PeerConnected", True, "HeartbeatFresh", f"{self.peer} is publishing heartbeats")

    def _start_action(self, act: ActiveAction, message: str) -> None:
        prev = dig(self.inp.drcontrol, "status", "lastAction") or {}
        same = prev.get("action") == act.action and prev.get("targetCluster") == act.target and \
            prev.get("specGeneration") == act.spec_generation and prev.get("result") == IN_PROGRESS
        la: dict[str, Any] = {
            "action": act.action,
            "targetCluster": act.target,
            "startedAt": prev["startedAt"] if same and "startedAt" in prev else self.inp.now,
            "result": IN_PROGRESS,
            "message": message if not act.conflict else
            f"{message} (conflicting requests: {act.conflict}; the Failover is carried out)",
        }
        if act.spec_generation is not None:
            la["specGeneration"] = act.spec_generation
        self.last_action = la

    def _finish_action(self, act: ActiveAction, result: str, message: str) -> None:
        prev = dig(self.inp.drcontrol, "status", "lastAction") or {}
        same = all(prev.get(k) == v for k, v in (("action", act.action), ("targetCluster", act.target),
                                                  ("specGeneration", act.spec_generation), ("result", result)))
        self._start_action(act, message)
        la = self.last_action
        assert la is not None
        if same:
            la["startedAt"] = prev.get("startedAt", la["startedAt"])
        elif prev.get("result") == IN_PROGRESS and prev.get("action") == act.action \
                and prev.get("targetCluster") == act.target and "startedAt" in prev:
            la["startedAt"] = prev["startedAt"]
        la["result"] = result
        if act.source == "spec":
            self._mark_handled(act)
        la["completedAt"] = prev["completedAt"] if same and "completedAt" in prev else self.inp.now
        la["durationSeconds"] = _seconds_between(la["startedAt"], la["completedAt"])

    def _mark_handled(self, act: ActiveAction) -> None:
        self.sb.status["handledAction"] = {"action": act.action, "targetCluster": act.target,
                                           "specGeneration": act.spec_generation}

    def _vrg_condition(self, want: str | None) -> None:
        v = self.inp.vrg
        # From the write that asks a role of the VRG until the VRG reports on it, one message: the
        # echo of that write (spec ahead of status) then changes nothing, where another message cost
        # a status write per app and per action.
        asked = f"VRG is asked to become {want}"
        if not v.exists and self.plan.vrg is not None:
            self.sb.condition("VRGHealthy", False, "VRGProgressing",
                              asked if want else "the VolumeReplicationGroup is being created")
        elif not v.exists:
            self.sb.condition("VRGHealthy", False, "VRGNotFound", "the VolumeReplicationGroup does not exist yet")
        elif want == PRIMARY and v.ready_as_primary:
            self.sb.condition("VRGHealthy", True, "Primary", "VRG is Primary with DataReady and ClusterDataReady")
        elif want == SECONDARY and v.ready_as_secondary:
            self.sb.condition("VRGHealthy", True, "Secondary", "VRG reports Secondary")
        elif not v.current and want and v.desired_state == want:
            self.sb.condition("VRGHealthy", False, "VRGProgressing", asked)
        elif not v.current:
            self.sb.condition("VRGHealthy", False, "VRGProgressing",
                              f"VRG status is for generation {v.observed_generation}, spec is at {v.generation}")
        elif want and v.desired_state and v.desired_state != want:
            # Asked of it by this plan (or the last): a VRG on its way to a new role is progressing,
            # not failing. Said so, every promotion and demotion would raise a Warning and its recovery.
            self.sb.condition("VRGHealthy", False, "VRGProgressing", asked)
        else:
            why = v.blocked_by()
            self.sb.condition("VRGHealthy", False, "VRGNotReady",
                              f"VRG reports state {v.state or '(none)'}, wanted {want}" + (f" ({why})" if why else ""))

    def _ready_for_application(self, ds: DRState | None) -> bool:
        """Set ReadyForApplication; return whether the VRG is ready as Primary now."""
        v = self.inp.vrg
        if ds is None or ds.primary != self.me:
            who = ds.primary if ds else "nobody yet"
            self.sb.condition("ReadyForApplication", False, "NotPrimary",
                              f"this cluster is not the Primary (primary: {who})")
            return False
        if not v.ready_as_primary:
            prev = dig(self.inp.drcontrol, "status") or {}
            if prev.get("currentPrimary") == self.me and prev.get("generation") == ds.generation and any(
                    c.get("type") == "ReadyForApplication" and c.get("status") == "True"
                    for c in prev.get("conditions") or []):
                # Serving here already at this generation: a VRG health change (a PVC joining makes
                # Ramen's VRG report Unknown) must not tell Argo CD to delete the running app. Only a
                # role or generation change withdraws it; VRGHealthy and Ready carry the health.
                self.sb.condition("ReadyForApplication", True, "Serving",
                                  f"Primary at generation {ds.generation}, the application runs here; the VRG is "
                                  "not ready now (see VRGHealthy)")
                return False
            self.sb.condition("ReadyForApplication", False, "WaitingForVRG",
                              "Primary at generation "
                              f"{ds.generation}; waiting for the VRG to report Primary with DataReady and "
                              "ClusterDataReady")
            return False
        self.sb.condition("ReadyForApplication", True, "DataReady",
                          f"VRG is Primary at generation {ds.generation}, PVs/PVCs restored: the application can "
                          "start here")
        return True

    def _volsync_key(self) -> None:
        """The PSK Secret, when VolSync is used: derived here and on the peer from the same seed."""
        if not volsync.in_use(self.inp):
            return
        name = volsync.secret_name(str(dig(self.inp.drcontrol, "metadata", "name")))
        problem = self.inp.volsync_seed_problem
        if problem:
            self.sb.condition("VolSyncReady", False, "VolSyncSeedMissing",
                              f"{problem}: the VolSync PSK Secret {name} cannot be derived, so VolSync replicates "
                              "nothing and a relocate cannot be lossless. Configure the same seed Secret on both "
                              "clusters (volSyncSeedSecretRef in ramen-p2p-operator-config)")
            return
        self.plan.volsync_secret = name
        if not self.pvcs_unpublished:
            self.sb.condition("VolSyncReady", True, "SecretDerived",
                              f"the VolSync PSK Secret {name} is derived from the seed shared by both clusters")

    def _finish(self, phase: str, ready: bool, reason: str, message: str, reconciling: bool) -> Plan:
        self._volsync_key()
        st = self.sb.status
        st["phase"] = phase
        if self.last_action is not None:
            st["lastAction"] = self.last_action
        self.sb.condition("Ready", ready, reason, message)
        self.sb.condition("Reconciling", reconciling, "Progressing" if reconciling else "Idle",
                          message if reconciling else "nothing in progress")
        if not self.stalled:
            self.sb.condition("Stalled", False, "NotStalled", "no blocking problem")
        self._application()
        self.plan.status = self.sb.build()
        self.plan.events = self.sb.transition_events()
        return self.plan

    def _application(self) -> None:
        """The owned Kustomization follows ReadyForApplication; its condition says where it is."""
        t = flux_template(self.inp.drcontrol)
        if t is None:
            return
        rfa = self.sb.get("ReadyForApplication")
        ready = rfa is not None and rfa.status == "True"
        self.plan.manages_application = True
        self.plan.kustomization = desired_kustomization(self.inp.drcontrol, ready,
                                                        rfa.last_transition_time if rfa else self.inp.now)
        view = self.inp.application
        if view.problem:
            self.sb.condition(FLUX_KUSTOMIZATION, False, "KustomizationUnknown",
                              f"Kustomization {t.ref}: {view.problem}")
        elif view.present and not view.deleting:
            self.sb.condition(FLUX_KUSTOMIZATION, True, "Present", f"Kustomization {t.ref} exists: Flux "
                              "applies the application here" + ("" if ready else "; deleting it"))
        elif view.present:
            self.sb.condition(FLUX_KUSTOMIZATION, False, "Deleting",
                              f"Kustomization {t.ref} is being deleted: Flux prunes the application here")
        elif view.present is False:
            self.sb.condition(FLUX_KUSTOMIZATION, False, "Absent", f"no Kustomization {t.ref}: the application "
                              "does not run here" + ("; creating it" if ready else ""))
        if view.problem or view.present is None or ready != bool(view.present and not view.deleting):
            # The controller writes or re-reads it now; look again soon, not at the next poll.
            self.plan.requeue_after = min(self.plan.requeue_after or APPLICATION_RECHECK, APPLICATION_RECHECK)

    # the decision ---------------------------------------------------------
    def run(self) -> Plan:
        inp = self.inp
        pol = inp.policy
        if not pol.found or pol.problem or self.me not in pol.clusters:
            why = pol.problem or (f"DRPolicy {pol.name} not found" if not pol.found
                                  else f"cluster {self.me} is not one of the DRPolicy's clusters {list(pol.clusters)}")
            return self._stall("InvalidPolicy", why)
        rtype = str(dig(inp.drcontrol, "spec", "vrgSpec", "replicationType") or "async")
        if (rtype == "sync") != pol.synchronous:
            want = "sync (the DRPolicy has no schedulingInterval)" if pol.synchronous else \
                f"async (the DRPolicy replicates every {pol.scheduling_interval})"
            return self._stall("ReplicationTypeMismatch",
                               f"spec.vrgSpec.replicationType is {rtype} but DRPolicy {pol.name} needs {want}")
        self._peer_status()
        co = inp.coordination
        if co.error is not None:
            return self._freeze(co.error.reason, co.error.message, corrupt=co.error.corrupt)
        self._reachable(co)
        ds = co.dr_state
        seen_gen = int(dig(inp.drcontrol, "status", "generation") or 0)
        seen = SeenState(seen_gen, str(dig(inp.drcontrol, "status", "currentPrimary") or "")) if seen_gen else None
        rollback = check_rollback(seen, ds)
        if rollback is not None:
            return self._stall(STATE_ROLLBACK_REASON,
                               f"{rollback.message}; nothing changes until an operator repairs the coordination store")
        if not dig(inp.drcontrol, "spec", "action"):
            self.sb.status.pop("handledAction", None)  # cleared: the same action may be asked again
        act = effective_action(inp, ds)
        if act is None and ds is not None:
            act = _unfinished(inp, ds)
        if act is not None and act.action not in (FAILOVER, RELOCATE):
            act = None
        if act is not None and act.target not in pol.clusters:
            self._finish_action(act, FAILED, f"targetCluster {act.target!r} is not one of {list(pol.clusters)}")
            act = None
        if ds is None:
            return self._initial(act)
        self.sb.status["generation"] = ds.generation
        self.sb.status["currentPrimary"] = ds.primary
        if act is not None and act.source == "spec" and act.target != ds.primary:
            self._want_intent(act, ds)
        elif self.inp.coordination.own_intent is not None:
            # Nothing asked of the peer any more (done, cancelled, or already true): take it back,
            # so a cancelled relocate cannot go on from a stale request.
            self.plan.coordination.append(WithdrawIntent())
        if act is None and not _released(inp, ds):
            self._cancel_recorded(ds)
        if ds.primary == self.me:
            return self._as_primary(ds, act)
        return self._as_secondary(ds, act)

    def _reachable(self, co: Coordination) -> None:
        if co.stores == 1:
            self.sb.condition("S3Reachable", True, "Reachable", "the coordination store answers")
        elif co.stores_unreachable:
            answered = co.stores - len(co.stores_unreachable)
            margin = "one more lost freezes roles" if answered == co.stores // 2 + 1 else "a majority still decides"
            self.sb.condition("S3Reachable", True, "MajorityReachable",
                              f"{answered} of {co.stores} coordination stores answer (unreachable: "
                              f"{', '.join(co.stores_unreachable)}); {margin}")
        else:
            self.sb.condition("S3Reachable", True, "Reachable", f"all {co.stores} coordination stores answer")

    def _cancel_recorded(self, ds: DRState) -> None:
        """An action recorded as in progress that nobody asks for any more ends: Cancelled when it was
        withdrawn before it took effect, Failed when a later action took the role away again."""
        prev = dig(self.inp.drcontrol, "status", "lastAction") or {}
        if prev.get("result") != IN_PROGRESS:
            return
        handled = dig(self.inp.drcontrol, "status", "handledAction") or {}
        la = dict(prev)
        if handled.get("action") == prev.get("action") and handled.get("targetCluster") == prev.get("targetCluster"):
            la.update(result=FAILED, completedAt=self.inp.now,
                      message=f"superseded by a later action: {ds.primary} is Primary at generation {ds.generation}")
        else:
            la.update(result=CANCELLED, completedAt=self.inp.now,
                      message="withdrawn before it was carried out: the request is gone from both clusters")
        la["durationSeconds"] = _seconds_between(str(la.get("startedAt") or self.inp.now), self.inp.now)
        self.last_action = la

    def _stall(self, reason: str, message: str) -> Plan:
        self.sb.condition("Stalled", True, reason, message)
        self.stalled = True
        for ctype in ("ReadyForApplication", "VRGHealthy"):
            self.sb.keep_condition(ctype, reason, "unknown: " + message)
        self.plan.requeue_after = self.inp.poll_interval
        return self._finish(PAUSED, False, reason, message, reconciling=False)

    def _freeze(self, reason: str, message: str, corrupt: bool) -> Plan:
        """S3 cannot be trusted right now: roles freeze, nothing is promoted or demoted."""
        if corrupt:
            self.sb.condition("S3Reachable", True, "Reachable", "the coordination store answers")
            self.sb.condition("Stalled", True, reason,
                              f"{message}; roles are frozen until the object is repaired")
            self.stalled = True
        else:
            self.sb.condition("S3Reachable", False, reason, f"{message}; roles are frozen, replication continues")
            # Stalled, not merely not Ready: kstatus (Flux, cli-utils waits) then reads Failed with this
            # reason instead of InProgress, so a wait fails with the cause rather than timing out.
            self.sb.condition("Stalled", True, reason,
                              f"{message}; roles are frozen until the coordination store answers")
            self.stalled = True
        for ctype in ("ReadyForApplication", "VRGHealthy"):
            self.sb.keep_condition(ctype, reason, "unknown: " + message)
        self.plan.requeue_after = min(self.inp.poll_interval, 10.0)
        return self._finish(PAUSED, False, reason, message, reconciling=False)

    def _want_intent(self, act: ActiveAction, ds: DRState) -> None:
        own = self.inp.coordination.own_intent
        peer = _live_peer_intent(self.inp, ds)
        if own is None and peer is not None and (peer.action, peer.target) == (act.action, act.target):
            # Asked on both clusters (GitOps often sets both): the peer's live intent already says
            # it, and should the peer withdraw it while our spec still asks, the next plan writes ours.
            return
        if (
            own is None
            or own.action != act.action
            or own.target != act.target
            or own.base_generation != ds.generation
            or own.spec_generation != (act.spec_generation or 0)
        ):
            self.plan.coordination.append(
                WriteIntent(act.action, act.target, ds.generation, act.spec_generation or 0))

    def _initial(self, act: ActiveAction | None) -> Plan:
        preferred = str(dig(self.inp.drcontrol, "spec", "preferredCluster") or "")
        claimer = preferred or self.me
        if act is not None and act.target == self.me:
            claimer = self.me
        if claimer not in self.inp.policy.clusters:
            # Nobody outside the policy will ever claim: say so rather than wait forever.
            return self._stall("InvalidPreferredCluster", f"spec.preferredCluster {claimer!r} is not one of the "
                               f"DRPolicy's clusters {list(self.inp.policy.clusters)}")
        self.sb.status.pop("currentPrimary", None)
        self._ready_for_application(None)
        if claimer == self.me:
            self.plan.coordination.append(Claim(self.me))
            self.plan.requeue_after = 0
            self._vrg_condition(PRIMARY)
            self.plan.publish = self._own_status(Role.SECONDARY, 0, False)
            return self._finish(INITIALIZING, False, "Claiming", "claiming the Primary role (generation 1)", True)
        self.plan.vrg = desired_vrg(self.inp, SECONDARY)
        self._vrg_condition(SECONDARY)
        self.plan.publish = self._own_status(Role.SECONDARY, 0, False)
        self.plan.requeue_after = self.inp.poll_interval
        return self._finish(INITIALIZING, False, "WaitingForClaim",
                            f"waiting for {claimer} to claim the Primary role", True)

    def _own_status(self, role: Role, generation: int, rfa: bool) -> ClusterStatus:
        v = self.inp.vrg
        healthy = v.ready_as_primary if v.desired_state == PRIMARY else v.ready_as_secondary
        details: dict[str, Any] = {"vrgState": v.state, "vrgHealthy": healthy, "readyForApplication": rfa}
        if role == Role.PRIMARY and v.ready_as_primary and volsync.in_use(self.inp):
            # What the Secondary's rdSpec is built from, bounded like any reader will check it. Only from
            # a VRG ready for its current spec: a list caught mid-change (a PVC joining, a promotion not
            # restored yet) would make the Secondary's Ramen drop destinations it still needs.
            pvc_list = volsync.published_pvcs(self.inp)
            too_big = pvcs.fits(pvc_list)
            if too_big:
                self.pvcs_unpublished = True
                self.sb.condition("VolSyncReady", False, "VolSyncPVCsTooLarge",
                                  f"the VolSync PVC list cannot be published to {self.peer}: {too_big}")
            else:
                details[pvcs.DETAILS_KEY] = pvc_list
        return ClusterStatus(role, generation, details)

    # -- this cluster is named Primary ----------------------------------------
    def _as_primary(self, ds: DRState, act: ActiveAction | None) -> Plan:
        v = self.inp.vrg
        released = _released(self.inp, ds)
        relocating_away = act is not None and act.action == RELOCATE and act.target == self.peer
        if released:
            if act is not None and act.action == FAILOVER and act.target == self.me:
                return self._take_over(ds, act, "taking the Primary role back after an unfinished relocate")
            self.plan.vrg = desired_vrg(self.inp, SECONDARY, prepare_final_sync=_needs_final_sync(self.inp),
                                        run_final_sync=_needs_final_sync(self.inp))
            self._vrg_condition(SECONDARY)
            self.sb.condition("ReadyForApplication", False, "Released",
                              f"generation {ds.generation} is handed over to {self.peer} for relocation")
            # A release is (re)published only over a VRG that reports Secondary: what says it was
            # released (our digest) may be wrong, the VRG is not.
            self.plan.publish = self._own_status(Role.SECONDARY_READY, ds.generation, False) \
                if v.ready_as_secondary else None
            self.plan.requeue_after = self.inp.poll_interval
            msg = f"demoted for relocation at generation {ds.generation}; waiting for {self.peer} to take over"
            if act is None:
                msg += ". The relocate was withdrawn after demotion: set action Failover to this cluster to take " \
                       "the Primary role back"
            else:
                self._start_action(act, msg)
            return self._finish(RELOCATING, False, "WaitingForPeer", msg, True)
        if relocating_away:
            assert act is not None
            return self._relocate_source(ds, act)
        # Steady Primary (or a Failover/Relocate aimed here, which is a no-op).
        action = self._promo_action(ds)
        self.plan.vrg = desired_vrg(self.inp, PRIMARY, action=action)
        self._vrg_condition(PRIMARY)
        rfa = self._ready_for_application(ds)
        self.plan.publish = self._own_status(Role.PRIMARY, ds.generation, rfa)
        if act is not None and act.action == FAILOVER and act.target == self.peer:
            # Failover is the target's decision; this cluster demotes when dr-state moves on.
            self._start_action(act, f"waiting for {self.peer} to take generation {ds.generation + 1}")
            self.plan.requeue_after = self.inp.poll_interval
            return self._finish(FAILING_OVER, False, "WaitingForPeer",
                                f"failover to {self.peer} requested; {self.peer} decides", True)
        if act is not None and act.target == self.me:
            if rfa:
                self._finish_action(act, SUCCEEDED, f"{self.me} is Primary at generation {ds.generation}")
            else:
                self._start_action(act, "waiting for the VRG to become ready as Primary")
                if act.source == "spec":
                    # Carried out once this cluster holds the generation: a conflicting Failover on
                    # the peer then moves the role once more, never back and forth.
                    self._mark_handled(act)
        phase = PROTECTED if rfa else PROTECTING
        msg = f"Primary at generation {ds.generation}" + ("" if rfa else "; waiting for the VRG")
        return self._finish(phase, rfa and v.exists, "Primary" if rfa else "WaitingForVRG", msg, not rfa)

    def _relocate_source(self, ds: DRState, act: ActiveAction) -> Plan:
        """Demotion half of a relocate on the current Primary."""
        v, co = self.inp.vrg, self.inp.coordination
        final_sync = _needs_final_sync(self.inp)
        already_demoting = v.exists and v.desired_state == SECONDARY
        peer_ready = (
            not co.peer_health.stale
            and co.peer_status is not None
            and co.peer_status.role == Role.SECONDARY
            and co.peer_status.observed_generation == ds.generation
            and bool(co.peer_status.details.get("vrgHealthy"))
        )
        self.plan.requeue_after = self.inp.poll_interval

        def waiting(msg: str, vrg: dict[str, Any], rfa: bool = False) -> Plan:
            self.plan.vrg = vrg
            self._start_action(act, msg)
            self.plan.publish = self._own_status(Role.PRIMARY, ds.generation, rfa)
            return self._finish(RELOCATING, False, "Relocating", msg, True)

        # Each stage is read off the live VRG spec, so a stage once entered is never undone by a
        # status that has not caught up with it yet (the stages only move forward).
        syncing = final_sync and v.exists and bool(v.spec_flag("prepareForFinalSync"))
        if not already_demoting and not syncing:
            if co.peer_health.stale or not peer_ready:
                # Not started: the application keeps running here.
                rfa = self._ready_for_application(ds)
                why = "is not publishing heartbeats" if co.peer_health.stale else \
                    "does not report a healthy Secondary VRG at this generation"
                self._vrg_condition(PRIMARY)
                msg = f"relocate to {self.peer} waits: {self.peer} {why}. A relocate never turns into a " \
                      "failover by itself; if the peer is lost, use action Failover"
                if co.peer_health.stale:
                    self.sb.condition("PeerConnected", False, "PeerStale", msg)
                return waiting(msg, desired_vrg(self.inp, PRIMARY, action=self._promo_action(ds)), rfa)
            # From here on the application must stop on this cluster so the final sync sees all its data.
            self.sb.condition("ReadyForApplication", False, "Relocating",
                              f"relocating to {self.peer}: stop the application here")
            if not (v.ready_as_primary and v.condition("ClusterDataProtected")):
                self._vrg_condition(PRIMARY)
                return waiting("relocate waits for the VRG to be DataReady and ClusterDataProtected",
                               desired_vrg(self.inp, PRIMARY, action=self._promo_action(ds)))
        self.sb.condition("ReadyForApplication", False, "Relocating",
                          f"relocating to {self.peer}: stop the application here")
        if not already_demoting and not syncing:
            # The final sync and the demotion must see the application stopped: wait for Flux to prune it.
            still = stop_problem(self.inp.drcontrol, self.inp.application, self._withdrawn_at())
            if still is None or still:
                self._vrg_condition(PRIMARY)
                self.plan.requeue_after = APPLICATION_RECHECK
                return waiting(f"relocate waits for the application to stop here: {still or 'checking'}",
                               desired_vrg(self.inp, PRIMARY, action=self._promo_action(ds)))
        if final_sync and not already_demoting:
            # Completion flags count only when the status describes the spec that asked for them;
            # a run once requested stays requested.
            running = v.spec_flag("runFinalSync")
            if not running and not (v.spec_flag("prepareForFinalSync") and v.current and v.prepare_complete):
                self._vrg_condition(PRIMARY)
                return waiting("preparing the final sync",
                               desired_vrg(self.inp, PRIMARY, action=self._promo_action(ds),
                                           prepare_final_sync=True))
            if not (running and v.current and v.final_sync_complete):
                self._vrg_condition(PRIMARY)
                return waiting("running the final sync",
                               desired_vrg(self.inp, PRIMARY, action=self._promo_action(ds),
                                           prepare_final_sync=True, run_final_sync=True))
        vrg = desired_vrg(self.inp, SECONDARY, prepare_final_sync=final_sync, run_final_sync=final_sync)
        self._vrg_condition(SECONDARY)
        if not v.ready_as_secondary:
            return waiting("demoting the VRG to Secondary", vrg)
        # Demotion done: publish the release. The peer may now take G+1.
        self.plan.vrg = vrg
        msg = f"demoted; released generation {ds.generation} to {self.peer}"
        self._start_action(act, msg)
        self.plan.publish = self._own_status(Role.SECONDARY_READY, ds.generation, False)
        return self._finish(RELOCATING, False, "WaitingForPeer", msg, True)

    def _withdrawn_at(self) -> str | None:
        """When ReadyForApplication became False here (as this plan writes it), None while True."""
        rfa = self.sb.get("ReadyForApplication")
        return rfa.last_transition_time if rfa is not None and rfa.status != "True" else None

    def _promo_action(self, ds: DRState) -> str:
        return str(ds.action) if ds.action in (Action.FAILOVER, Action.RELOCATE) else ""

    # -- this cluster is not the Primary --------------------------------------
    def _as_secondary(self, ds: DRState, act: ActiveAction | None) -> Plan:
        v, co = self.inp.vrg, self.inp.coordination
        self.plan.vrg = desired_vrg(self.inp, SECONDARY)
        self._vrg_condition(SECONDARY)
        self._ready_for_application(ds)
        still = stop_problem(self.inp.drcontrol, self.inp.application, self._withdrawn_at())
        if (still is None or still) and not (v.exists and v.desired_state == SECONDARY):
            # The owned Kustomization is still here (an old Primary back after a failover, a new
            # protection of an app running here): no VRG becomes Secondary under a running
            # application. The VRG is left as it is until Flux has pruned it.
            self.plan.vrg = None
            self.plan.requeue_after = APPLICATION_RECHECK
            self.sb.condition("VRGHealthy", False, "WaitingForApplicationStop",
                              f"the VRG becomes Secondary once the application stopped here: {still or 'checking'}")
        self.plan.publish = self._own_status(Role.SECONDARY, ds.generation, False)
        ps = co.peer_status
        released_here = (ps is not None and ps.role == Role.SECONDARY_READY
                         and ps.observed_generation == ds.generation)
        if released_here and v.ready_as_secondary and (act is None or act.target == self.me):
            # A release is a commitment: even if the relocate was withdrawn meanwhile, the peer has
            # demoted and will not promote at this generation, so taking over is the only way on.
            return self._take_over(ds, act or ActiveAction(RELOCATE, self.me, "peer"),
                                   f"{ds.primary} released generation {ds.generation}")
        if act is None or act.target != self.me:
            due = auto_failover_due(self.inp, ds)
            if due is not None:
                self.plan.requeue_after = max(1.0, due)  # wake up when an automatic failover falls due
            if act is not None and act.target == ds.primary:
                # Already where it was asked to be.
                if v.ready_as_secondary:
                    self._finish_action(act, SUCCEEDED,
                                        f"{ds.primary} is Primary at generation {ds.generation}")
                else:
                    self._start_action(act, "waiting for the local VRG to report Secondary")
            healthy = v.ready_as_secondary
            return self._finish(PROTECTED if healthy else PROTECTING, healthy,
                                "Secondary" if healthy else "WaitingForVRG",
                                f"Secondary; {ds.primary} is Primary at generation {ds.generation}", not healthy)
        # An action aimed at this cluster.
        self.plan.requeue_after = self.inp.poll_interval
        if not v.ready_as_secondary:
            msg = f"{act.action.lower()} waits for the local VRG to report Secondary at its current generation"
            self._start_action(act, msg)
            return self._finish(FAILING_OVER if act.action == FAILOVER else RELOCATING, False, "WaitingForVRG",
                                msg, True)
        if act.action == FAILOVER:
            if self.inp.policy.synchronous and not self.inp.peer_fenced:
                msg = f"failover of a synchronous policy waits until {self.peer} is fenced " \
                      f"(DRCluster {self.peer} clusterFence: Fenced and its NetworkFence Succeeded)"
                self._start_action(act, msg)
                return self._finish(FAILING_OVER, False, "WaitingForFence", msg, True)
            return self._take_over(ds, act, f"failing over from {ds.primary}")
        # Relocate: wait for the Primary's release at this generation (taken above once published).
        if co.peer_health.stale:
            msg = f"relocate waits: {self.peer} is not publishing heartbeats. A relocate never turns into a " \
                  "failover by itself; if the peer is lost, use action Failover"
            self.sb.condition("PeerConnected", False, "PeerStale", msg)
        else:
            msg = f"relocate waits for {ds.primary} to finish its final sync and demote"
        self._start_action(act, msg)
        return self._finish(RELOCATING, False, "WaitingForPeer", msg, True)

    def _take_over(self, ds: DRState, act: ActiveAction, why: str) -> Plan:
        etag = self.inp.coordination.dr_state_etag or ""
        # An intent asking for what this transition does would be stale the moment it wins: the
        # transition is the request and the decision at once, so the intent is not written (and a
        # lost transition re-plans, which asks for it again).
        self.plan.coordination = [op for op in self.plan.coordination
                                  if not (isinstance(op, WriteIntent) and op.target == self.me)]
        self.plan.coordination.append(Transition(self.me, ds.generation, etag, act.action, ds.primary))
        self.plan.requeue_after = 0
        # The VRG is promoted only after the next read shows dr-state naming this cluster.
        self.plan.vrg = desired_vrg(self.inp, SECONDARY)
        msg = f"taking generation {ds.generation + 1}: {why}"
        self.sb.condition("ReadyForApplication", False, "Transitioning",
                          f"becoming Primary at generation {ds.generation + 1}; the VRG is promoted next")
        self._start_action(act, msg)
        return self._finish(FAILING_OVER if act.action == FAILOVER else RELOCATING, False, "Transitioning", msg, True)


def plan(inp: PlanInput) -> Plan:
    """Compute what should be true for one DRControl on this cluster."""
    return _Planner(inp).run()


__all__ = [
    "FINALIZER",
    "ActiveAction",
    "Claim",
    "CoordinationOp",
    "Plan",
    "Transition",
    "VRGView",
    "WriteIntent",
    "desired_vrg",
    "effective_action",
    "plan",
]
