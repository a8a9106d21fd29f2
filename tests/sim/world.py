"""Two clusters under one deterministic scheduler: the real DRControl controller, applier and
S3 library over in-memory API servers and S3, a model of Ramen's VRG controller, and faults.

A schedule is a list of events (`Event`), generated from a seed and replayable as is: every
event is applicable in every state (a restart of a running cluster does nothing), so a failing
schedule can be shrunk by deleting events. After the schedule, `settle()` repairs every fault
and runs fair rounds until both clusters agree with dr-state (I4).

Crashes are `Crash` (a BaseException, so no `except Exception` in the code under test can
swallow it) raised at an I/O point, before or after the request takes effect; the crashed
cluster loses all process memory and restarts from the API server and S3 alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.api import DRCLUSTER, DRCONTROL, DRPOLICY, NETWORKFENCE, VRG
from reconciler.controllers.drcontrol import DRControlController
from reconciler.controllers.peering import PeeringRegistry, PeeringSettings
from reconciler.kube import Applier, Obj
from reconciler.kube.errors import ApiError
from reconciler.s3peer import ObjectStore, S3PeerError
from tests.sim import mutants
from tests.sim.argocdmodel import ack_step, argocd_step
from tests.sim.checks import POLL_INTERVAL, Checker, Violation
from tests.sim.fluxmodel import flux_step
from tests.sim.memkube import ListRecorder, MemApiServer, MemCache, MemKubeClient
from tests.sim.mems3 import MemBucket, MemS3Client
from tests.sim.vrgmodel import vrg_degrade, vrg_step

CLUSTERS = ("east", "west")
NS, APP = "ns", "app"
KEY = f"{NS}/{APP}"
PROFILE = "s3-shared"
# With a quorum, dr-state is replicated over these (PROFILE, first, also holds the other objects).
QUORUM_PROFILES = (PROFILE, "s3-b", "s3-c")
POLL = POLL_INTERVAL
STALE_AFTER = 30.0
AUTO_AFTER = 60.0
EPOCH = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

Event = tuple[Any, ...]


class Crash(BaseException):
    """kill -9 of one cluster's operator at an I/O point."""


@dataclass
class Variant:
    """What kind of protection the schedule runs with."""

    preferred: str = "east"
    volsync: bool = False
    auto_failover: bool = False
    quorum: bool = False  # dr-state over three stores (docs/protocol.md, three coordination stores)
    # One store at first; ("migrate", c) adds the quorum to c's DRPolicy (docs/protocol.md, moving).
    migrate: bool = False
    # The DRControl names a Flux Kustomization the operator owns; ("flux", c) runs Flux's model.
    flux: bool = False
    # An Argo CD ApplicationSet with our plugin deploys the application; ("argocd", c) runs Argo CD's
    # model and ("argoack", c) the plugin's stop acknowledgement (tests/sim/argocdmodel.py).
    argocd: bool = False


@dataclass
class ArmedCrash:
    countdown: int  # crash at the n-th I/O from now ...
    after: bool  # ... once the request took effect (else before it is sent)
    label: str = ""  # ... counting only I/O whose label contains this


@dataclass
class Node:
    """One cluster: its API server (survives crashes) and its operator process (does not)."""

    name: str
    server: MemApiServer
    s3: MemS3Client  # onto the first store (the only one without a quorum)
    client: MemKubeClient
    cache: MemCache
    stores: list[MemS3Client] = field(default_factory=list)  # onto every store, s3 first
    quorum: bool = False  # its DRPolicy names the quorum
    controller: DRControlController | None = None
    heartbeat_ok: bool = False
    armed: ArmedCrash | None = None


@dataclass
class World:
    seed: int
    variant: Variant = field(default_factory=Variant)
    clock: float = 1000.0
    wall_offset: float = 0.0
    trace: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        three = self.variant.quorum or self.variant.migrate
        self.buckets = [MemBucket() for _ in (QUORUM_PROFILES if three else (PROFILE,))]
        self.bucket = self.buckets[0]
        self.late: list[Callable[[], None]] = []
        self.argo_applications: set[str] = set()  # the clusters Argo CD has an Application for
        self.nodes: dict[str, Node] = {}
        for c in CLUSTERS:
            server = MemApiServer()
            stores = [MemS3Client(b, c, self._io_hook(c), self.late) for b in self.buckets]
            client = MemKubeClient(server, self._io_hook(c), self.now)
            self._seed_objects(server, c)
            cache = MemCache(server, [DRCONTROL, VRG, DRPOLICY, DRCLUSTER, NETWORKFENCE])
            self.nodes[c] = Node(c, server, stores[0], client, cache, stores=stores, quorum=self.variant.quorum)
            self.start(c)
        self.checker = Checker(self)

    # -- time ---------------------------------------------------------------------
    def monotonic(self) -> float:
        return self.clock

    def now(self) -> str:
        t = EPOCH + dt.timedelta(seconds=self.clock + self.wall_offset)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- I/O points -----------------------------------------------------------------
    def _io_hook(self, c: str) -> Callable[[str], Callable[[], None]]:
        def hook(label: str) -> Callable[[], None]:
            if "/dr-state" in label:
                self.drstate_io.add(c)
            node = self.nodes.get(c)
            if node is None or node.armed is None or node.armed.label not in label:
                return _nothing
            node.armed.countdown -= 1
            if node.armed.countdown > 0:
                return _nothing
            armed, node.armed = node.armed, None
            if not armed.after:
                self.trace.append(f"  {c} killed before {label}")
                raise Crash(c)

            def after() -> None:
                self.trace.append(f"  {c} killed after {label}")
                raise Crash(c)
            return after
        return hook

    # -- setup ------------------------------------------------------------------------
    def _seed_objects(self, server: MemApiServer, c: str) -> None:
        v = self.variant
        server.create(DRPOLICY, {
            "apiVersion": DRPOLICY.api_version, "kind": "DRPolicy", "metadata": {"name": "pol"},
            "spec": {"drClusters": list(CLUSTERS), "schedulingInterval": "5m", "s3CoordinationProfile": PROFILE,
                     **({"s3CoordinationQuorum": list(QUORUM_PROFILES)} if v.quorum else {}),
                     **({"autoFailover": {"enabled": True, "after": f"{int(AUTO_AFTER)}s"}}
                        if v.auto_failover else {})}})
        for dc in CLUSTERS:
            server.create(DRCLUSTER, {"apiVersion": DRCLUSTER.api_version, "kind": "DRCluster",
                                      "metadata": {"name": dc},
                                      "spec": {"clusterName": dc, "s3ProfileName": PROFILE,
                                               "clusterFence": "Unfenced"}})
        self._create_drcontrol(server)

    def _create_drcontrol(self, server: MemApiServer) -> None:
        v = self.variant
        vrg_spec: dict[str, Any] = {"replicationType": "async", "pvcSelector": {"matchLabels": {"app": APP}},
                                    "s3Profiles": [PROFILE]}
        if v.volsync:
            vrg_spec["volSync"] = {"disabled": False}
        spec: dict[str, Any] = {"drPolicyRef": {"name": "pol"}, "preferredCluster": v.preferred, "vrgSpec": vrg_spec}
        if v.argocd:
            spec["application"] = {"argoCD": {"applicationSet": APP}}
        if v.flux:
            spec["application"] = {"fluxKustomization": {
                "name": APP, "namespace": "flux-system",
                "spec": {"interval": "10m", "path": "./app", "prune": True,
                         "sourceRef": {"kind": "Bucket", "name": "apps"}}}}
        server.create(DRCONTROL, {
            "apiVersion": DRCONTROL.api_version, "kind": "DRControl", "metadata": {"name": APP, "namespace": NS},
            "spec": spec})

    def start(self, c: str) -> None:
        """Start (or restart) the operator of `c`: nothing carried over but the API server and S3."""
        node = self.nodes[c]
        node.cache.lagging = set()
        node.cache.sync(force=True)
        settings = PeeringSettings(poll_interval=POLL, stale_after=STALE_AFTER, monotonic=self.monotonic,
                                   fetch_workers=1)
        by_profile = dict(zip(QUORUM_PROFILES, node.stores, strict=False))
        registry = PeeringRegistry(c, lambda p: ObjectStore(by_profile[p], "bucket"), settings)
        node.controller = DRControlController(
            cluster=c, client=node.client, cache=node.cache, applier=Applier(node.client), events=ListRecorder(),
            peerings=registry, poll_interval=POLL, now=self.now, heartbeat_ok=lambda: node.heartbeat_ok,
            monotonic=self.monotonic)
        node.heartbeat_ok = False
        node.armed = None

    def kill(self, c: str) -> None:
        node = self.nodes[c]
        node.controller = None
        node.armed = None
        node.heartbeat_ok = False

    # -- running events ----------------------------------------------------------------
    def run(self, events: list[Event]) -> None:
        for ev in events:
            self.step(ev)

    def step(self, ev: Event) -> None:
        self.trace.append(_fmt(ev))
        self.drstate_io: set[str] = set()  # clusters that read or wrote dr-state in this step
        try:
            self._do(ev)
        except Crash as crash:
            self.kill(str(crash.args[0]))
        for node in self.nodes.values():
            node.cache.sync()
        self.checker.check(ev)

    def _do(self, ev: Event) -> None:
        kind = ev[0]
        if kind == "tick":
            self.clock += float(ev[1])
            return
        if kind == "wall_jump":
            self.wall_offset += float(ev[1])
            return
        if kind == "deliver":
            late, self.late[:] = list(self.late), []
            for f in late:
                f()
            return
        if kind in ("corrupt_drstate", "rollback_drstate"):
            self.checker.tamper(kind)
            return
        if kind == "forge_release":
            self.checker.forge_release()
            return
        if kind == "store":
            # A whole store is lost (or back): its site went down, for both clusters.
            i = int(ev[1])
            if i < len(self.buckets):
                self.buckets[i].down = ev[2] == "down"
            return
        c = ev[1]
        node = self.nodes[c]
        if kind == "vrg":
            vrg_step(node.server, self.now())
            return
        if kind == "flux":
            flux_step(node.server, NS)
            return
        if kind == "argocd":
            argocd_step({n: x.server for n, x in self.nodes.items()}, self.argo_applications, c, NS, APP)
            return
        if kind == "argoack":
            ack_step(node.server, self.argo_applications, c, NS, APP)
            return
        if kind == "migrate":
            self.migrate(c)
            return
        if kind == "vrg_degrade":
            vrg_degrade(node.server)
            return
        if kind == "restart":
            if node.controller is None:
                self.start(c)
            return
        if kind == "s3":
            for client in node.stores:
                client.faults.down = ev[2] == "down"
            return
        if kind == "lag":
            kinds = {ev[3]} if len(ev) > 3 else {"volumereplicationgroups", "drcontrols"}
            lagging = {k for k in {str(VRG), str(DRCONTROL)} if k.split(".")[0] in kinds}
            node.cache.lagging = node.cache.lagging | lagging if ev[2] == "on" else node.cache.lagging - lagging
            return
        if kind == "fault":
            i = int(ev[3]) if len(ev) > 3 else 0
            setattr(node.stores[i % len(node.stores)].faults, ev[2], True)
            return
        if kind == "user":
            self._user(node, ev[2], ev[3] if len(ev) > 3 else "")
            return
        if kind == "delete":
            with contextlib.suppress(ApiError):
                node.server.delete(DRCONTROL, APP, NS, self.now())
            return
        if kind == "protect":
            if node.server.get(DRCONTROL, APP, NS) is None:
                self._create_drcontrol(node.server)
            return
        ctl = node.controller
        if ctl is None:
            return
        if kind == "arm":
            node.armed = ArmedCrash(int(ev[2]), ev[3] == "after", ev[4] if len(ev) > 4 else "")
        elif kind == "crash":
            self.kill(c)
        elif kind in ("reconcile", "resync"):
            # "resync": queued by the informer's periodic resync alone (WorkQueue.routine).
            ctl.routine = (lambda _k: True) if kind == "resync" else (lambda _k: False)
            try:
                ctl.reconcile(KEY)
            except ApiError:
                pass  # the work queue retries: conflicts and API errors are expected
            except Exception as e:  # anything else is a bug: the queue would retry it forever
                self.checker.violation("ReconcileError", f"{c}: {type(e).__name__}: {e}")
        elif kind == "heartbeat":
            ok = True
            for coord in ctl.peerings.coordinators().values():
                try:
                    coord.heartbeat(operator_version="sim")
                except S3PeerError:
                    ok = False
            node.heartbeat_ok = ok and bool(ctl.peerings.coordinators())
        elif kind == "poll":
            for peering in ctl.peerings.all():
                with contextlib.suppress(S3PeerError):
                    peering.reader.poll()

    def migrate(self, c: str) -> None:
        """The user adds the quorum to `c`'s DRPolicy (one cluster at a time, as in a real move)."""
        node = self.nodes[c]
        if not self.variant.migrate or node.quorum:
            return
        pol = node.server.get(DRPOLICY, "pol", None)
        assert pol is not None
        pol["spec"]["s3CoordinationQuorum"] = list(QUORUM_PROFILES)
        node.server.write(DRPOLICY, pol, None)
        node.quorum = True

    def _user(self, node: Node, action: str, target: str) -> None:
        """A user edits the DRControl on one cluster (the API server, not the operator, takes it)."""
        drc = node.server.get(DRCONTROL, APP, NS)
        if drc is None:
            return
        drc["spec"]["action"] = action
        drc["spec"]["targetCluster"] = target
        if not action:
            drc["spec"].pop("targetCluster", None)
        node.server.write(DRCONTROL, drc, None)

    # -- the end of a schedule -------------------------------------------------------------
    def settle(self, max_rounds: int = 60) -> None:
        """Repair every fault, then run fair rounds until both clusters agree with dr-state (I4)."""
        self.trace.append("-- faults end: repair and settle")
        self.checker.repair()
        self.late.clear()
        for b in self.buckets:
            b.down = False
        for node in self.nodes.values():
            for client in node.stores:
                client.faults = type(client.faults)()
            node.cache.lagging = set()
            node.armed = None
            if node.controller is None:
                self.start(node.name)
            self.migrate(node.name)  # a move started is finished: both DRPolicies name the quorum
        stable = 0
        for _ in range(max_rounds):
            for c in CLUSTERS:
                self.step(("protect", c))  # a protection removed during the schedule is asked for again
                for kind in ("heartbeat", "poll", "reconcile", "vrg", "reconcile",
                             *(("flux", "reconcile") if self.variant.flux else ()),
                             *(("argocd", "argoack", "reconcile") if self.variant.argocd else ())):
                    self.step((kind, c))
            self.step(("tick", 2.0))
            problem = self.checker.unsettled()
            stable = stable + 1 if problem is None else 0
            if stable >= 3:
                return
        self.checker.violation("I4", f"not settled after {max_rounds} fair rounds: {self.checker.unsettled()}")

    def drcontrol(self, c: str) -> Obj | None:
        """The DRControl as the API server has it (not a copy: read only)."""
        server = self.nodes[c].server
        return server.objects.get(server.key(DRCONTROL, APP, NS))

    def vrg(self, c: str) -> Obj | None:
        """The VRG as the API server has it (not a copy: read only)."""
        server = self.nodes[c].server
        return server.objects.get(server.key(VRG, APP, NS))


def _nothing() -> None:
    return None


def _fmt(ev: Event) -> str:
    return " ".join(str(x) for x in ev)


# -- schedule generation --------------------------------------------------------------------
ACTIONS = [("Failover", "east"), ("Failover", "west"), ("Relocate", "east"), ("Relocate", "west"), ("", "")]
IO_POINTS = ["PATCH VolumeReplicationGroup", "CREATE VolumeReplicationGroup", "PATCH DRControl/status",
             "GET VolumeReplicationGroup", "PUT ns/app/dr-state", "PUT ns/app/cluster-status",
             "PUT ns/app/dr-intent", "DELETE ns/app/dr-intent", "/digest", "GET ns/app/dr-state"]
FAULTS = ["lose_next", "timeout_next_write", "ambiguous_next_cas", "late_next_write"]


def generate(rng: random.Random, length: int, *, tamper: bool = True, stores: int = 1,
             migrate: bool = False) -> list[Event]:
    """A random schedule: mostly ordinary work, with faults and user actions mixed in."""
    events: list[Event] = []
    for _ in range(length):
        c = rng.choice(CLUSTERS)
        r = rng.random()
        if migrate and r < 0.04:
            events.append(("migrate", c))
            continue
        if stores > 1 and r < 0.06:
            # Losing a store (a site's bucket, or the witness) and getting it back.
            if rng.random() < 0.5:
                events.append(("store", rng.randrange(stores), rng.choice(("down", "up"))))
            else:
                events.append(("fault", c, rng.choice(FAULTS), rng.randrange(stores)))
            continue
        if r < 0.30:
            # Every fourth is a resync (no random draw, so the rest of the schedule is unchanged).
            events.append(("resync" if len(events) % 4 == 3 else "reconcile", c))
        elif r < 0.40:
            events.append(("vrg", c))
        elif r < 0.42:
            events.append(("vrg_degrade", c))
        elif r < 0.50:
            events.append(("heartbeat", c))
        elif r < 0.56:
            events.append(("poll", c))
        elif r < 0.64:
            events.append(("tick", rng.choice((1, 2, 5, 10, 40))))
        elif r < 0.72:
            action, target = rng.choice(ACTIONS)
            events.append(("user", c, action, target))
        elif r < 0.75:
            events.append(("arm", c, rng.randint(1, 8), rng.choice(("before", "after"))))
        elif r < 0.78:
            events.append(("arm", c, 1, rng.choice(("before", "after")), rng.choice(IO_POINTS)))
        elif r < 0.81:
            events.append(("crash", c))
        elif r < 0.86:
            events.append(("restart", c))
        elif r < 0.90:
            events.append(("s3", c, rng.choice(("down", "up"))))
        elif r < 0.93:
            events.append(("fault", c, rng.choice(FAULTS)))
        elif r < 0.95:
            events.append(("deliver",))
        elif r < 0.97:
            events.append(("lag", c, rng.choice(("on", "off")), rng.choice(("volumereplicationgroups", "drcontrols"))))
        elif r < 0.975:
            events.append(("wall_jump", rng.choice((-3600, 3600))))
        elif r < 0.98:
            events.append((rng.choice(("delete", "protect")), c))
        elif tamper:
            events.append((rng.choice(("corrupt_drstate", "rollback_drstate", "forge_release")),))
    return events


FLUX_SHARE = 0.25
FLUX_IO_POINTS = ["DELETE Kustomization", "CREATE Kustomization", "GET Kustomization"]


def _mixed_in(rng: random.Random, events: list[Event], extra: Callable[[float], Event | None]) -> list[Event]:
    """After each event, `extra` of a fresh random draw, when it gives one."""
    out: list[Event] = []
    for ev in events:
        out.append(ev)
        added = extra(rng.random())
        if added is not None:
            out.append(added)
    return out


def with_flux(rng: random.Random, events: list[Event]) -> list[Event]:
    """Flux steps (and crashes at the Kustomization writes) mixed into a schedule."""
    def extra(r: float) -> Event | None:
        if r < 0.15:
            return ("flux", rng.choice(CLUSTERS))
        if r < 0.18:
            return ("arm", rng.choice(CLUSTERS), 1, rng.choice(("before", "after")), rng.choice(FLUX_IO_POINTS))
        return None

    return _mixed_in(rng, events, extra)


ARGOCD_SHARE = 0.2


def with_argocd(rng: random.Random, events: list[Event]) -> list[Event]:
    """Argo CD's generations and the plugin's acknowledgements mixed into a schedule."""
    def extra(r: float) -> Event | None:
        if r < 0.12:
            return ("argocd", rng.choice(CLUSTERS))
        if r < 0.2:
            return ("argoack", rng.choice(CLUSTERS))
        return None

    return _mixed_in(rng, events, extra)


def variant_for(rng: random.Random, quorum: bool | None = None) -> Variant:
    """A random variant; `quorum` True or False fixes that choice (the other draws stay the same)."""
    v = Variant(preferred=rng.choice(CLUSTERS), volsync=rng.random() < 0.5, auto_failover=rng.random() < 0.3,
                quorum=rng.random() < 0.3)
    v.migrate = not v.quorum and rng.random() < 0.2
    return v if quorum is None else dataclasses.replace(v, quorum=quorum, migrate=False)


@dataclass
class Outcome:
    seed: int
    events: list[Event]
    variant: Variant
    violations: list[Violation]
    trace: list[str]


def run_schedule(seed: int, events: list[Event] | None = None, variant: Variant | None = None,
                 mutant: str = "", length: int = 60, quorum: bool | None = None) -> Outcome:
    """One schedule from its seed (`quorum` True: always the three-store variant)."""
    rng = random.Random(seed)
    # A stream of its own, so the Flux draws leave every other seed's schedule as it was.
    flux_rng = random.Random(f"flux/{seed}")
    if variant is None:
        # One draw picks Flux (as before this draw had a second use), Argo CD or neither.
        tool = flux_rng.random()
        variant = dataclasses.replace(variant_for(rng, quorum), flux=tool < FLUX_SHARE,
                                      argocd=FLUX_SHARE <= tool < FLUX_SHARE + ARGOCD_SHARE)
    if events is None:
        events = generate(rng, length, stores=3 if variant.quorum or variant.migrate else 1,
                          tamper=not variant.migrate, migrate=variant.migrate)
        if variant.flux:
            events = with_flux(flux_rng, events)
        if variant.argocd:
            events = with_argocd(flux_rng, events)
    logging.getLogger("reconciler").setLevel(logging.CRITICAL)
    with mutants.mutant(mutant):
        world = World(seed, variant)
        world.run(events)
        if not world.checker.violations:
            world.settle()
    return Outcome(seed, events, variant, world.checker.violations, world.trace)


def shrink(out: Outcome, mutant: str = "") -> list[Event]:
    """Delete events while the schedule still fails with the same invariant (delta debugging)."""
    want = out.violations[0].invariant
    events = list(out.events)

    def fails(evs: list[Event]) -> bool:
        res = run_schedule(out.seed, evs, out.variant, mutant)
        return any(v.invariant == want for v in res.violations)

    chunk = max(1, len(events) // 2)
    while chunk >= 1:
        i = 0
        while i < len(events):
            trial = events[:i] + events[i + chunk:]
            if fails(trial):
                events = trial
            else:
                i += chunk
        chunk //= 2
    return events


def describe(out: Outcome) -> str:
    lines = [f"seed {out.seed} variant {json.dumps(out.variant.__dict__)}"]
    lines += [f"VIOLATION {v.invariant}: {v.message}" for v in out.violations]
    lines += ["events: " + json.dumps(out.events)]
    return "\n".join(lines)
