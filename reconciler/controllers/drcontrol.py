"""The DRControl controller: gathers inputs, runs the planner, applies the plan.

Every decision is in `reconciler.plan.drcontrol`; this module only reads
(caches, S3) and writes (coordination CAS, the VRG, DRControl status, events).
Coordination writes come first and are followed by a re-plan, so a VRG is
promoted only once dr-state, read fresh or just written by a won conditional
write, names this cluster.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.api import DRCLUSTER, DRCONTROL, DRPOLICY, NETWORKFENCE, VRG
from reconciler.api.common import parse_time
from reconciler.api.conditions import Condition, set_condition
from reconciler.controllers.nudge import NUDGE_ANNOTATION
from reconciler.controllers.peering import Peering, PeeringError, PeeringRegistry
from reconciler.controllers.volsync import VolSyncKeys, ensure_psk_secret
from reconciler.durations import parse_duration
from reconciler.kube import Applier, Cache, EventRecorder, KubeClient, Obj, Result, split_key
from reconciler.kube.errors import ApiError
from reconciler.kube.informer import Event, EventType
from reconciler.kube.jsoncopy import json_copy
from reconciler.kube.patch import main_patch, replacing
from reconciler.plan.application import KUSTOMIZATION, ApplicationView, differs, flux_template, owned_by
from reconciler.plan.drcluster import FENCED_MESSAGE, fence_name
from reconciler.plan.drcontrol import FINALIZER, Claim, Plan, Transition, WithdrawIntent, WriteIntent, plan
from reconciler.plan.inputs import Coordination, CoordinationError, PlanInput, PolicyView, VRGView
from reconciler.plan.status import events_between
from reconciler.s3peer import (
    Action,
    AppKey,
    ClusterStatus,
    Coordinator,
    CorruptObject,
    DRIntent,
    DRState,
    PreconditionFailed,
    Record,
    Role,
    S3PeerError,
)

log = logging.getLogger(__name__)

MAX_REPLANS = 4
#: Nudge-driven polls of one peer are at least this far apart: a relocate of 1,000 apps sends a few
#: nudges per app, and a poll for each cost more than the nudges saved (README "Scale").
NUDGE_POLL_GAP = 1.0
PSK_RECHECK = 300.0
# An owned Kustomization found as wanted is read again only this often (Flux, not us, changes it).
APPLICATION_CACHE_SECONDS = 60.0
FENCED = ("Fenced", "ManuallyFenced")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class DRControlController:
    cluster: str
    client: KubeClient
    cache: Cache
    applier: Applier
    events: EventRecorder
    peerings: PeeringRegistry
    poll_interval: float = 30.0
    now: Callable[[], str] = utc_now
    # Called with (drcontrol, ready: bool) whenever ReadyForApplication flips.
    on_ready_change: Callable[[Obj, bool], None] | None = None
    # The namespaces watched (None: all).
    namespaces: tuple[str | None, ...] = (None,)
    # Whether this cluster's own heartbeat reached S3 lately (automatic failover needs it).
    heartbeat_ok: Callable[[], bool] = lambda: True
    # Called with (peer, namespace, name) after writing something the peer waits on.
    nudge: Callable[[str, str, str], None] | None = None
    # The seed the VolSync PSK Secrets are derived from (none configured by default).
    volsync_keys: VolSyncKeys = field(default_factory=VolSyncKeys)
    monotonic: Callable[[], float] = time.monotonic
    # Whether the key being reconciled was queued only by a periodic resync or a change of the
    # peer's report (WorkQueue.routine): nothing says dr-state changed.
    routine: Callable[[str], bool] = lambda _key: False
    # When each app's PSK Secret was last found right: checked again only every PSK_RECHECK seconds.
    _psk_checked: dict[AppKey, float] = field(default_factory=dict)
    _nudges_seen: dict[AppKey, str] = field(default_factory=dict)
    # A relocate asked and not yet planned for: (spec generation, monotonic time first seen).
    _relocates_asked: dict[AppKey, tuple[int, float]] = field(default_factory=dict)
    _own_intents: dict[AppKey, DRIntent | None] = field(default_factory=dict)
    # Digest status hashes of releases confirmed against the per-app object.
    _confirmed_releases: dict[AppKey, str | None] = field(default_factory=dict)
    # The owned Kustomization per app as last read or written: (view, live object, when read).
    _applications: dict[AppKey, tuple[ApplicationView, Obj | None, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- inputs ---------------------------------------------------------------
    def policy_view(self, drc: Obj) -> tuple[PolicyView, Obj | None]:
        name = str(((drc.get("spec") or {}).get("drPolicyRef") or {}).get("name") or "")
        pol = self.cache.get(DRPOLICY, name)
        if pol is None:
            return PolicyView(name=name), None
        spec = pol.get("spec") or {}
        clusters = tuple(spec.get("drClusters") or ())
        problem = ""
        auto_after: float | None = None
        auto = spec.get("autoFailover") or {}
        if auto.get("enabled"):
            try:
                auto_after = parse_duration(str(auto.get("after") or ""))
            except ValueError as e:
                problem = f"DRPolicy {name}: spec.autoFailover.after: {e}"
        return PolicyView(
            name=name,
            found=True,
            problem=problem,
            clusters=clusters,
            scheduling_interval=str(spec.get("schedulingInterval") or ""),
            replication_class_selector=spec.get("replicationClassSelector") or {},
            volume_snapshot_class_selector=spec.get("volumeSnapshotClassSelector") or {},
            auto_failover_after=auto_after,
        ), pol

    def peer_fenced(self, peer: str) -> bool:
        """The peer is fenced: by hand, or by our NetworkFence asking Fenced and reporting the fence done.

        A NetworkFence whose spec is Unfenced also reports Succeeded ("unfencing operation
        successful"): only the fencing success counts.
        """
        for dc in self.cache.list(DRCLUSTER):
            spec = dc.get("spec") or {}
            if spec.get("clusterName") != peer:
                continue
            if spec.get("clusterFence") == "ManuallyFenced":
                return True
            if spec.get("clusterFence") == "Fenced":
                nf = self.cache.get(NETWORKFENCE, fence_name(peer)) or {}
                status = nf.get("status") or {}
                return (nf.get("spec") or {}).get("fenceState") == "Fenced" and \
                    status.get("result") == "Succeeded" and status.get("message") == FENCED_MESSAGE
        return False

    def _own_intent(self, peering: Peering, app: AppKey) -> DRIntent | None:
        with self._lock:
            if app in self._own_intents:
                return self._own_intents[app]
        intent = peering.coordinator.published_intent(app)
        with self._lock:
            self._own_intents[app] = intent
        return intent

    def coordination(self, peering: Peering, app: AppKey, known: Record[DRState] | None = None
                     ) -> tuple[Coordination, Record[DRState] | None]:
        """What S3 says about `app` now; any failure becomes a CoordinationError (roles freeze).

        `known`: the dr-state a conditional write of this reconcile just made, used instead of
        reading it back. A won If-Match/If-None-Match write is as fresh as a read at that moment,
        and a later change by the peer is seen as soon as by a read (the next write's If-Match
        fails, the next reconcile reads).
        """
        reader = peering.reader
        try:
            rec = known if known is not None else peering.coordinator.read_dr_state(app)
            unknown = _unknown_primary(rec, (self.cluster, peering.peer))
            if unknown is not None:
                return Coordination(error=unknown, peer_health=reader.health()), None
        except S3PeerError as e:
            return Coordination(error=CoordinationError(e.reason, str(e), isinstance(e, CorruptObject)),
                                peer_health=reader.health()), None
        co, rec = self._advice(peering, app, rec)
        quorum = peering.coordinator.quorum
        if quorum is None:
            return co, rec
        return dataclasses.replace(co, stores=len(quorum.stores),
                                   stores_unreachable=tuple(quorum.stores_unreachable())), rec

    def _advice(self, peering: Peering, app: AppKey, rec: Record[DRState] | None
                ) -> tuple[Coordination, Record[DRState] | None]:
        """dr-state read: add what the other coordination objects say."""
        reader = peering.reader
        try:
            snap = reader.snapshot()
            own_status = self._own_status(peering, app)
            own_intent = self._own_intent(peering, app)
        except S3PeerError as e:
            fallback = self._advice_unreachable(peering, app, e)
            if fallback is None:
                return Coordination(error=CoordinationError(e.reason, str(e), isinstance(e, CorruptObject)),
                                    peer_health=reader.health()), None
            return dataclasses.replace(fallback, dr_state=rec.value if rec else None,
                                       dr_state_etag=rec.etag if rec else None), rec
        peer_status = peer_intent = None
        health = reader.health()
        try:
            ps = snap.status(app)
            peer_status = ps.value if ps else None
            pi = snap.intent(app)
            peer_intent = pi.value if pi else None
        except CorruptObject as e:
            # A bad peer report is not a reason to freeze: failover must work without the peer.
            # It is shown (PeerConnected) so a waiting relocate does not blame the peer's VRG.
            log.warning("ignoring corrupt peer object for %s: %s", app, e, extra={"key": f"{app.namespace}/{app.name}"})
            health = dataclasses.replace(health, corrupt=f"{e.reason}: {e}")
        return Coordination(
            dr_state=rec.value if rec else None,
            dr_state_etag=rec.etag if rec else None,
            own_status=own_status,
            peer_status=peer_status,
            own_intent=own_intent,
            peer_intent=peer_intent,
            peer_health=health,
        ), rec

    def _advice_unreachable(self, peering: Peering, app: AppKey, e: S3PeerError) -> Coordination | None:
        """dr-state answered (a majority of a quorum), the store of the other objects did not.

        Roles still follow dr-state: a failover to this cluster and a demotion need nothing
        else. What the peer said is unknown, as if it were silent, so nothing waits on it
        completes (a relocate waits). Our own last report comes from the digest in memory: a
        release this cluster made must keep it demoted. Without a quorum, or before the digest
        was ever loaded, there is nothing to go on: roles freeze as usual (None).
        """
        entries = peering.coordinator.cached_digest_entries()
        if peering.coordinator.quorum is None or isinstance(e, CorruptObject) or entries is None:
            return None
        entry = entries.get(app)
        own = ClusterStatus(entry.role, entry.observed_generation) if entry is not None else None
        with self._lock:
            intent = self._own_intents.get(app)
        return Coordination(own_status=own, own_intent=intent, peer_health=peering.reader.health(),
                            advice_problem=f"the store of the coordination objects does not answer: {e}")

    def _own_status(self, peering: Peering, app: AppKey) -> ClusterStatus | None:
        """This cluster's own report, from its digest; a release is checked against the per-app object.

        A release (`secondary-ready`) keeps this cluster demoted, so it must not rest on the digest
        alone: an entry nobody wrote (a forged or stale digest read at start) would hand the app
        away. The object is what the peer acts on; one GET per release, remembered by its hash.
        """
        entry = peering.coordinator.digest_entry(app)
        if entry is None:
            return None
        if entry.role != Role.SECONDARY_READY:
            return ClusterStatus(entry.role, entry.observed_generation)
        with self._lock:
            confirmed = app in self._confirmed_releases and self._confirmed_releases[app] == entry.status_hash
        if not confirmed:
            rec = peering.coordinator.read_own_status(app)
            obj = rec.value if rec else None
            if obj is None or obj.role != entry.role or obj.observed_generation != entry.observed_generation:
                log.warning("the digest says this cluster released generation %d, its cluster-status does not: "
                            "not acting on it", entry.observed_generation, extra={"key": _k(app)})
                return None
            with self._lock:
                self._confirmed_releases[app] = entry.status_hash
        return ClusterStatus(entry.role, entry.observed_generation)

    # -- the reconcile ----------------------------------------------------------
    def reconcile(self, key: str) -> Result | None:
        ns, name = split_key(key)
        drc = self.cache.get(DRCONTROL, name, ns)
        if drc is None:
            return None
        assert ns is not None
        app = AppKey(ns, name)
        policy, policy_obj = self.policy_view(drc)
        peer = next((c for c in policy.clusters if c != self.cluster), "")
        peering: Peering | None = None
        peering_problem = _store_unfit(policy_obj)
        if policy.found and peer and not peering_problem:
            spec = (policy_obj or {}).get("spec") or {}
            profile = str(spec.get("s3CoordinationProfile") or "")
            quorum = tuple(str(p) for p in spec.get("s3CoordinationQuorum") or ())
            try:
                peering = self.peerings.get(profile, peer, quorum)
            except (PeeringError, S3PeerError) as e:
                peering_problem = str(e)
        if (drc["metadata"].get("deletionTimestamp")):
            return self._delete(drc, app, peering, policy.found)
        if FINALIZER not in (drc["metadata"].get("finalizers") or []):
            # Before any coordination write, so a deletion can always clean up what we wrote.
            drc = self._add_finalizer(drc)
        nudge_wait = self._take_nudge(drc, app, peering) if peering is not None else 0.0
        if nudge_wait > 0:
            # The peer's news is read by the poll that nudges arriving together share, not yet
            # taken: a plan now would rest on the snapshot the nudge says is old, and cost a dr-state
            # read for nothing. Whatever else queued this key waits as long (under NUDGE_POLL_GAP).
            return Result(requeue_after=nudge_wait)
        fresh_wait = self._fresh_peer_view(drc, app, peering) if peering is not None else 0.0
        if fresh_wait > 0:
            return Result(requeue_after=fresh_wait)

        seen = drc  # what the planner continues from; `drc` stays the live object patches are based on
        application = self._application_view(drc, app)
        vrg_obj = self.cache.get(VRG, name, ns)
        vrg_fresh = False
        # dr-state as the last won write left it, or as read before an intent write (which leaves it)
        written: Record[DRState] | None = None
        # A resync brings no news of dr-state, nor does a peer report at the generation held: such a
        # reconcile may plan from the dr-state last read or written, and goes on only if that plan
        # changes nothing that rests on dr-state (_quiet). So the hourly resync of every app, and
        # the reconciles a peer's reports bring during its actions, cost no dr-state read; a peer
        # report or intent at a later generation says the peer moved dr-state on, and it is read.
        light = peering is not None and self.routine(key)
        for _ in range(MAX_REPLANS + 1):
            if peering is not None:
                known = written
                if known is None and light:
                    known = peering.coordinator.cached_dr_state(app)
                    light = known is not None
                co, rec = self.coordination(peering, app, known)
                if light and written is None and _peer_ahead(co, rec):
                    light = False
                    continue  # the peer moved dr-state on: read it
            else:
                reason = "ConditionalWritesUnsupported" if peering_problem.startswith(UNFIT) else "S3Misconfigured"
                co, rec = Coordination(error=CoordinationError(reason, peering_problem)), None
                if not policy.found or not peer:
                    co = Coordination()  # the planner reports the policy problem itself
            inp = PlanInput(
                cluster=self.cluster,
                drcontrol=seen,
                policy=policy,
                vrg=VRGView(vrg_obj),
                coordination=co,
                peer_fenced=self.peer_fenced(peer),
                now=self.now(),
                poll_interval=self.poll_interval,
                local_heartbeat_ok=self.heartbeat_ok(),
                volsync_seed_problem=self.volsync_keys.problem(),
                application=application,
            )
            p = plan(inp)
            if light and written is None and peering is not None and not _quiet(p, seen, vrg_obj, peering, app):
                light = False
                continue  # plan again from dr-state as S3 has it
            if not vrg_fresh and (_releases(p, co) or (_ready({"status": p.status}) and not _ready(seen))):
                # A release lets the peer promote, ReadyForApplication lets the app start: both must
                # rest on the VRG as the API server has it now, not on a cache that may lag (I2, I5).
                vrg_fresh = True
                live_vrg = self._read_vrg(app)
                if _resource_version(live_vrg) != _resource_version(vrg_obj):
                    vrg_obj = live_vrg
                    p = plan(dataclasses.replace(inp, vrg=VRGView(vrg_obj)))
            if not p.coordination or peering is None:
                break
            ok, written = self._coordinate(peering, app, p, rec)
            if ok and written is None and all(isinstance(op, WriteIntent | WithdrawIntent) for op in p.coordination):
                # An intent leaves dr-state as this reconcile just read it (fresh: a plan with writes is
                # never made from a held dr-state), so the re-plan needs no second read.
                written = rec
            if ok:
                self._nudge(peering, app)
                # The next plan continues from this one (e.g. the action it started), not from the cache.
                seen = {**drc, "status": p.status}
            else:
                peering.reader.invalidate()
        if seen is not drc:
            # Re-planned after a coordination write: the Events tell what changed since the status
            # as stored, not since the plan before the write (whose changes were never written).
            p.events = events_between(drc.get("status") or {}, p.status)
        return self._apply(drc, app, p, peering, vrg_obj)

    def _intent_op(self, coord: Coordinator, app: AppKey, op: WithdrawIntent | WriteIntent) -> None:
        if isinstance(op, WithdrawIntent):
            coord.delete_intent(app)
            with self._lock:
                self._own_intents[app] = None
            return
        intent = DRIntent(Action(op.action), op.target, op.base_generation, op.spec_generation, self.now())
        coord.write_intent(app, intent)
        with self._lock:
            self._own_intents[app] = intent

    def _read_vrg(self, app: AppKey) -> Obj | None:
        try:
            return self.client.get(VRG, app.name, app.namespace)
        except ApiError as e:
            if e.not_found:
                return None
            raise

    def _take_nudge(self, drc: Obj, app: AppKey, peering: Peering) -> float:
        """A new nudge from the peer: its S3 objects changed, so read them soon rather than at the next
        poll. Returns the seconds until the poll that will (0: this reconcile's snapshot is it).

        The nudge names one app but tells of every write the peer made before it (PeerNudger sends
        one at a time): the poll it brings queues every app it finds changed (PeerReader.on_changed).

        The token found at the first look at an app in this process is not news: what it told was
        written before that look, and this process's own polls read it. A site coming back finds
        every app nudged while it was away; taking each as news deferred every first reconcile and
        ran it twice.
        """
        token = (drc["metadata"].get("annotations") or {}).get(NUDGE_ANNOTATION) or ""
        known = self._nudges_seen.get(app)
        self._nudges_seen[app] = token
        if known is None or not token or token == known:
            return 0.0
        return peering.reader.invalidate(min_gap=NUDGE_POLL_GAP)

    def _fresh_peer_view(self, drc: Obj, app: AppKey, peering: Peering) -> float:
        """A relocate just asked for is planned on the peer's objects as they are now. Returns the
        seconds until the poll that reads them (0: this reconcile's snapshot is it).

        A relocate is the action whose start rests on the peer's report (the source demotes only
        once the target reports a healthy Secondary at this generation). A snapshot from before the
        request may predate that report (a return or a repair just finished), and the relocate would
        wait a whole poll interval for nothing. Relocates asked together share polls, at most one
        every NUDGE_POLL_GAP.
        """
        gen = _generation(drc)
        asked = (drc.get("spec") or {}).get("action") == Action.RELOCATE.value \
            and (drc.get("status") or {}).get("observedGeneration") != gen
        with self._lock:
            if not asked:
                self._relocates_asked.pop(app, None)
                return 0.0
            first = self._relocates_asked.get(app)
            if first is None or first[0] != gen:
                first = (gen, self.monotonic())
                self._relocates_asked[app] = first
        return peering.reader.poll_after(first[1], min_gap=NUDGE_POLL_GAP)

    def _nudge(self, peering: Peering, app: AppKey) -> None:
        if self.nudge is not None:
            self.nudge(peering.peer, app.namespace, app.name)

    def _coordinate(self, peering: Peering, app: AppKey, p: Plan, rec: Record[DRState] | None
                    ) -> tuple[bool, Record[DRState] | None]:
        """Perform the plan's coordination writes; False when the store refused or failed (re-plan).

        Also returns the dr-state a won claim or transition wrote, when the plan's last dr-state
        write won (None: read it again).
        """
        coord = peering.coordinator
        written: Record[DRState] | None = None
        try:
            for op in p.coordination:
                if isinstance(op, Claim):
                    out = coord.claim_initial(app)
                    written = out.current if out.won else None
                    log.info("initial claim %s", "won" if out.won else "lost", extra={"key": _k(app)})
                elif isinstance(op, Transition):
                    if rec is None:
                        return False, None
                    out = coord.transition(app, rec, Action(op.action), reclaim=op.primary == op.previous_primary)
                    written = out.current if out.won else None
                    log.info("transition to generation %d %s", op.from_generation + 1,
                             "won" if out.won else "lost", extra={"key": _k(app)})
                elif isinstance(op, WithdrawIntent | WriteIntent):
                    try:
                        self._intent_op(coord, app, op)
                    except S3PeerError as e:
                        if coord.quorum is None or isinstance(e, CorruptObject):
                            raise
                        # An intent is advice; dr-state answers through the quorum. A failover to
                        # this cluster must not wait on the store of the other objects.
                        log.warning("intent not written, going on without it: %s", e, extra={"key": _k(app)})
        except S3PeerError as e:
            log.warning("coordination write failed: %s", e, extra={"key": _k(app)})
            return False, None
        except ValueError as e:
            # A plan the S3 library refuses is a planner bug; retrying it would only loop.
            log.error("coordination write refused: %s", e, extra={"key": _k(app)})
            return False, None
        return True, written

    def _add_finalizer(self, drc: Obj) -> Obj:
        desired = json_copy(drc)
        desired["metadata"]["finalizers"] = [*(drc["metadata"].get("finalizers") or []), FINALIZER]
        desired.pop("status", None)
        return self.applier.apply(DRCONTROL, desired, drc).obj

    def _apply(self, drc: Obj, app: AppKey, p: Plan, peering: Peering | None, vrg_live: Obj | None) -> Result:
        """Status first, then the VRG, then cluster-status.

        The status goes first so that a crash or a lost race between two writes never leaves
        ReadyForApplication True beside a VRG already demoted (I5), and the generation the VRG
        acts on is recorded before the VRG changes role (the rollback guard's memory).
        """
        before = _ready(drc)
        written = self.applier.apply_status(DRCONTROL, drc, replacing(drc.get("status"), p.status)).obj
        if p.volsync_secret is not None:
            # Before the VRG: Ramen's VRG controller creates no ReplicationSource/Destination without it.
            written = self._ensure_psk_secret(app, p, written)
        if p.manages_application:
            # After the status (ReadyForApplication is withdrawn before the application goes) and
            # before the VRG (a demotion follows the application's removal, never leads it).
            self._apply_application(drc, app, p)
        if p.vrg is not None:
            try:
                res = self.applier.apply(VRG, p.vrg, vrg_live)
                if _generation(res.obj) != _generation(vrg_live) and p.publish is not None \
                        and p.publish.role == Role.SECONDARY_READY:
                    # The VRG reported Secondary for the spec it had, not for the one just written:
                    # the release waits for it to report again (I2).
                    p.publish = None
                    p.requeue_after = min(p.requeue_after or 1.0, 1.0)
            except ApiError as e:
                if e.conflict:
                    raise
                log.warning("could not write the VRG: %s", e, extra={"key": _k(app)})
                p.status = _vrg_write_failed(p.status, str(e), self.now())
                p.requeue_after = min(p.requeue_after or self.poll_interval, self.poll_interval)
                written = self.applier.apply_status(DRCONTROL, written, replacing(written.get("status"),
                                                                                  p.status)).obj
        if p.publish is not None and peering is not None:
            try:
                if peering.coordinator.write_cluster_status(app, p.publish):
                    self._nudge(peering, app)
            except S3PeerError as e:
                # The peer may be waiting on this report (a release, an acknowledgement): try again soon.
                log.warning("could not publish cluster-status: %s", e, extra={"key": _k(app)})
                p.requeue_after = min(p.requeue_after or self.poll_interval, self.poll_interval)
        for ev in p.events:
            self.events.event(written, ev.type, ev.reason, ev.message)
        after = _ready({"status": p.status})
        if before != after and self.on_ready_change is not None:
            self.on_ready_change(written, after)
        return Result(requeue_after=p.requeue_after)

    # -- the owned Flux Kustomization -------------------------------------------------
    def _application_view(self, drc: Obj, app: AppKey) -> ApplicationView:
        """The owned Kustomization: read fresh unless it was found as wanted lately.

        During a relocate it is always read fresh: the demotion must rest on it being gone.
        """
        t = flux_template(drc)
        if t is None:
            with self._lock:
                self._applications.pop(app, None)
            return ApplicationView()
        with self._lock:
            known = self._applications.get(app)
        relocating = (drc.get("status") or {}).get("phase") == "Relocating"
        if known is not None and not relocating and not known[0].problem and not known[0].deleting \
                and self.monotonic() - known[2] < APPLICATION_CACHE_SECONDS:
            return known[0]
        try:
            live: Obj | None = self.client.get(KUSTOMIZATION, t.name, t.namespace)
        except ApiError as e:
            if not e.not_found:
                view = ApplicationView(problem=f"HTTP {e.status} {e.reason}")
                self._remember(app, view, None)
                return view
            live = None
        if live is not None and not owned_by(live, drc):
            view = ApplicationView(present=True, problem="it exists but this DRControl did not create it "
                                   "(its labels name another owner or none); delete or rename it")
        else:
            view = ApplicationView(present=live is not None,
                                   deleting=bool(live and live["metadata"].get("deletionTimestamp")))
        self._remember(app, view, live)
        return view

    def _remember(self, app: AppKey, view: ApplicationView, live: Obj | None) -> None:
        with self._lock:
            self._applications[app] = (view, live, self.monotonic())

    def _apply_application(self, drc: Obj, app: AppKey, p: Plan) -> None:
        """Create, update or delete the owned Kustomization as the plan says; errors end in its condition."""
        t = flux_template(drc)
        with self._lock:
            known = self._applications.get(app)
        if t is None or known is None or known[0].problem or known[0].present is None:
            return  # unknown or not ours: the condition says why, nothing is written
        view, live, _ = known
        want = p.kustomization
        try:
            if want is None:
                if live is not None and not view.deleting:
                    self.client.delete(KUSTOMIZATION, t.name, t.namespace)
                    log.info("deleted Kustomization %s so Flux prunes the application", t.ref, extra={"key": _k(app)})
                    self._remember(app, ApplicationView(present=True, deleting=True), live)
                return
            if view.deleting:
                return  # Flux is still pruning; it can be created again once it is gone
            if live is None:
                res = self.applier.apply(KUSTOMIZATION, want, None)
                log.info("created Kustomization %s: Flux applies the application here", t.ref, extra={"key": _k(app)})
            elif differs(live, want):
                res = self.applier.apply(KUSTOMIZATION, {**want, "spec": replacing(live.get("spec"), want["spec"])},
                                         live)
            else:
                return
            self._remember(app, ApplicationView(present=True), res.obj)
        except ApiError as e:
            if e.not_found and want is not None:
                why = "the Kustomization CRD (kustomize.toolkit.fluxcd.io/v1) is not installed here" \
                    if live is None else "it was deleted meanwhile"
            else:
                why = f"HTTP {e.status} {e.reason}"
            log.warning("could not write Kustomization %s: %s", t.ref, why, extra={"key": _k(app)})
            self._remember(app, ApplicationView(problem=f"could not write it: {why}"), live)
            p.requeue_after = min(p.requeue_after or self.poll_interval, 5.0)

    def _ensure_psk_secret(self, app: AppKey, p: Plan, written: Obj) -> Obj:
        assert p.volsync_secret is not None
        now = self.monotonic()
        with self._lock:
            last = self._psk_checked.get(app)
        if last is not None and now - last < PSK_RECHECK:
            return written  # one GET per app every few minutes, not per reconcile
        try:
            ensure_psk_secret(self.client, app.namespace, p.volsync_secret,
                              self.volsync_keys.psk(app.namespace, app.name))
            with self._lock:
                self._psk_checked[app] = now
            return written
        except ApiError as e:
            if e.conflict:
                raise  # created meanwhile (by another worker): the retry finds it
            log.warning("could not write the VolSync PSK Secret %s: HTTP %s %s", p.volsync_secret, e.status,
                        e.reason, extra={"key": _k(app)})
            p.status = _set_condition(p.status, "VolSyncReady", "SecretWriteFailed",
                                      f"could not write the VolSync PSK Secret {p.volsync_secret}: HTTP {e.status} "
                                      f"{e.reason}", self.now())
            p.requeue_after = min(p.requeue_after or self.poll_interval, self.poll_interval)
            return self.applier.apply_status(DRCONTROL, written, replacing(written.get("status"), p.status)).obj

    # -- deletion -------------------------------------------------------------------
    def _delete(self, drc: Obj, app: AppKey, peering: Peering | None, policy_found: bool) -> Result | None:
        if FINALIZER not in (drc["metadata"].get("finalizers") or []):
            return None
        if peering is None and policy_found:
            # The coordination store is configured but cannot be reached now: keep the finalizer,
            # or our S3 keys would outlive the protection and confuse a later one.
            log.warning("deletion waits for the coordination store", extra={"key": _k(app)})
            return Result(requeue_after=self.poll_interval)
        # The VRG as the API server has it: a lagging informer would let the protection go (and
        # dr-state with it) while a primary VRG still runs here.
        vrg = self._read_vrg(app)
        if vrg is not None:
            if not vrg["metadata"].get("deletionTimestamp"):
                try:
                    self.client.delete(VRG, app.name, app.namespace)
                except ApiError as e:
                    if not e.not_found:
                        raise
            return Result(requeue_after=1.0)  # wait until the VRG is gone
        if peering is not None:
            try:
                self._leave(peering, app)
            except S3PeerError as e:
                log.warning("deletion waits for the coordination store: %s", e, extra={"key": _k(app)})
                return Result(requeue_after=self.poll_interval)
        desired = json_copy(drc)
        desired["metadata"]["finalizers"] = [f for f in drc["metadata"]["finalizers"] if f != FINALIZER]
        desired.pop("status", None)
        self.applier.apply(DRCONTROL, desired, drc)
        log.info("protection removed", extra={"key": _k(app)})
        return None

    def _leave(self, peering: Peering, app: AppKey) -> None:
        """Remove our S3 keys; dr-state goes with the last cluster to leave.

        Say "leaving" first (a tombstone cluster-status), then read the peer's cluster-status
        object itself (not through its digest, which a crash may have left behind): of two
        clusters leaving at once, the one that looks second sees the other's tombstone, so
        dr-state is never orphaned by the race. Only the peer's tombstone lets dr-state go: a
        peer that has said nothing may still protect the app (it claimed or took over at an
        earlier generation and crashed before publishing), and would find its dr-state gone.
        Otherwise dr-state and our tombstone stay for the peer to find when it leaves in turn
        (or for a new protection to start from).
        """
        coord = peering.coordinator
        coord.write_cluster_status(app, ClusterStatus(Role.UNKNOWN, 0, {"leaving": True}))
        try:
            peer = coord.read_status_of(app, peering.peer)
        except CorruptObject:
            coord.forget_app(app, keep_tombstone=True)  # unsure: leave dr-state to the peer
            return
        rec = coord.read_dr_state(app)
        peer_left = peer is not None and bool(peer.value.details.get("leaving"))
        if rec is not None and peer_left:
            try:
                coord.delete_dr_state(app, rec)
            except PreconditionFailed:
                coord.forget_app(app, keep_tombstone=True)  # changed meanwhile: look again next time
                return
            rec = None
        if rec is None:
            # The last to leave also clears the peer's tombstone.
            coord.forget_app(app, keep_tombstone=False, peer_tombstone=peering.peer if peer_left else None)
        else:
            coord.forget_app(app, keep_tombstone=True)
        with self._lock:
            self._own_intents.pop(app, None)
            self._psk_checked.pop(app, None)  # a new protection of the app checks its Secret at once
            # Nothing of a removed protection stays in memory (a site that protects and releases
            # apps for months would otherwise grow with every app it ever had).
            for memory in (self._relocates_asked, self._nudges_seen, self._confirmed_releases, self._applications):
                memory.pop(app, None)

    def keys_for_all(self) -> list[str]:
        return [key for ns in self.namespaces for key in self.cache.keys(DRCONTROL, ns)]


UNFIT = "the coordination store failed the capability probe"


def affects_drcontrols(event: Event) -> bool:
    """Whether a DRPolicy or DRCluster event can change any DRControl's plan.

    DRControls read the spec of both kinds and, of the DRPolicy status, only the Validated
    verdict (`_store_unfit`); the periodic probe rewrites the rest of the status.
    """
    if event.type != EventType.UPDATED or event.old is None:
        return True
    old, new = event.old, event.obj
    if (old.get("metadata") or {}).get("generation") != (new.get("metadata") or {}).get("generation"):
        return True
    return _validated(old) != _validated(new)


def _validated(obj: Obj) -> tuple[Any, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Validated":
            return c.get("status"), c.get("reason")
    return None, None


def _store_unfit(policy: Obj | None) -> str:
    """Why the policy's store must not be used for CAS (the DRPolicy probe said so), or ""."""
    for c in ((policy or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Validated" and c.get("status") == "False" \
                and c.get("reason") == "ConditionalWritesUnsupported":
            return f"{UNFIT}: {c.get('message', '')}"
    return ""


def _generation(obj: Obj | None) -> int:
    return int(((obj or {}).get("metadata") or {}).get("generation") or 0)


def _quiet(p: Plan, drc: Obj, vrg: Obj | None, peering: Peering, app: AppKey) -> bool:
    """Whether a plan made from a held dr-state writes nothing that depends on dr-state: no
    coordination write, no VRG change (its role), no new report, ReadyForApplication as it is."""
    if p.coordination:
        return False
    if p.vrg is not None and (vrg is None or main_patch(vrg, p.vrg)):
        return False
    if p.publish is not None:
        entry = peering.coordinator.digest_entry(app)
        if entry is None or entry.status_hash != p.publish.content_hash():
            return False
    return _ready({"status": p.status}) == _ready(drc)


def _peer_ahead(co: Coordination, held: Record[DRState] | None) -> bool:
    """The peer reports or asks at a generation after the dr-state held: it moved dr-state on."""
    generation = held.value.generation if held is not None else 0
    return (co.peer_status is not None and co.peer_status.observed_generation > generation) or \
        (co.peer_intent is not None and co.peer_intent.base_generation > generation)


def _releases(p: Plan, co: Coordination) -> bool:
    """The plan publishes a release (secondary-ready) not yet published."""
    if p.publish is None or p.publish.role != Role.SECONDARY_READY:
        return False
    own = co.own_status
    return not (own is not None and own.role == Role.SECONDARY_READY
                and own.observed_generation == p.publish.observed_generation)


def _resource_version(obj: Obj | None) -> str | None:
    return None if obj is None else str((obj.get("metadata") or {}).get("resourceVersion"))


def _unknown_primary(rec: Record[DRState] | None, clusters: tuple[str, ...]) -> CoordinationError | None:
    """A well-formed dr-state naming a cluster outside the DRPolicy is not acted on: roles freeze."""
    if rec is None or rec.value.primary in clusters:
        return None
    return CoordinationError("UnknownPrimary", f"dr-state generation {rec.value.generation} names "
                             f"{rec.value.primary!r} as Primary, which is not one of the DRPolicy's clusters "
                             f"{list(clusters)}", corrupt=True)


def _k(app: AppKey) -> str:
    return f"{app.namespace}/{app.name}"


def _ready(obj: Obj) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "ReadyForApplication":
            return bool(c.get("status") == "True")
    return False


def _vrg_write_failed(status: dict[str, Any], message: str, now: str) -> dict[str, Any]:
    return _set_condition(status, "VRGHealthy", "VRGWriteFailed", f"could not write the VRG: {message}", now)


def _set_condition(status: dict[str, Any], ctype: str, reason: str, message: str, now: str) -> dict[str, Any]:
    """The planned status with one of its conditions turned False by what a write found.

    Through `set_condition`, as the planner's conditions go: the transition time moves only when the
    status flips (and strictly increases), and a long API message is cut to what the CRD accepts.
    """
    status = json_copy(status)
    conditions = status.get("conditions") or []
    for i, c in enumerate(conditions):
        if c.get("type") == ctype:
            cond = Condition.from_dict(c, f"status.conditions[{i}]")
            out = set_condition([cond], ctype, False, reason, message, now=parse_time(now),
                                observed_generation=cond.observed_generation)
            conditions[i] = out[0].to_dict()
    return status
