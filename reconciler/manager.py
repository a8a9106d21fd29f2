"""Assembles the unified operator: caches, controllers, S3 peering, heartbeat, metrics and probes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler import __version__
from reconciler.api import DRCLUSTER, DRCONTROL, DRPOLICY, NETWORKFENCE, VRG
from reconciler.config import OperatorConfig
from reconciler.controllers.drcluster import DRClusterController
from reconciler.controllers.drcontrol import DRControlController, affects_drcontrols, utc_now
from reconciler.controllers.drpolicy import DRPolicyController
from reconciler.controllers.nudge import PeerNudger
from reconciler.controllers.peering import PeeringRegistry, PeeringSettings, profile_store_factory
from reconciler.controllers.volsync import VolSyncKeys
from reconciler.httpbounds import MAX_CONNECTIONS, REQUEST_DEADLINE, BoundedHandler, BoundedHTTPServer
from reconciler.install import LEASE_NAME
from reconciler.kube import (
    Applier,
    Cache,
    Controller,
    Event,
    EventRecorder,
    EventType,
    KubeClient,
    LeaderElector,
    LeaseConfig,
    Obj,
    ResourceType,
)
from reconciler.kube.echoes import Echoes
from reconciler.kube.errors import ApiError
from reconciler.metrics import Metrics
from reconciler.metrics_auth import KubeAuthorizer
from reconciler.notify import WebhookNotifier
from reconciler.s3peer import AppKey, ObjectStore, S3PeerError
from reconciler.s3peer.envelope import EnvelopeTooLarge

log = logging.getLogger(__name__)

SECRETS = ResourceType("", "v1", "secrets", "Secret", has_status=False)
STORAGECLASSES = ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False,
                              has_status=False)
VOLUMESNAPSHOTCLASSES = ResourceType("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses",
                                     "VolumeSnapshotClass", namespaced=False, has_status=False)
VOLUMEREPLICATIONCLASSES = ResourceType("replication.storage.openshift.io", "v1alpha1", "volumereplicationclasses",
                                        "VolumeReplicationClass", namespaced=False, has_status=False)


#: Apps reconciled per poll cycle regardless of change (see Manager._rotate).
ROTATING_CHECKS = 4


#: Reconciles mostly wait on S3 and the API server, so many run at once; their reports then share
#: digest writes (Coordinator.flush_digest). 1,000 apps failed over in 168 s with 2, 72 s with 8 and
#: 63 s with 16 (bench/bench_site.py, README "Scale").
DEFAULT_WORKERS = 16

#: How long a report waits for others to share its digest write (Coordinator.digest_linger): long
#: enough for a burst to share a flush, short beside a poll interval.
DIGEST_LINGER = 0.05

@dataclass(frozen=True)
class Options:
    cluster_name: str
    namespace: str = "ramen-system"
    poll_interval: float = 30.0
    heartbeat_interval: float = 60.0
    stale_after: float = 180.0
    workers: int = DEFAULT_WORKERS
    leader_elect: bool = False
    # Every cached object is re-delivered once per period, spread over it (informer.py), and each
    # DRControl reconcile reads its dr-state: an hour keeps that at 83 reads a minute at 5,000 apps.
    # What changes in S3 behind our back is found sooner by the rotating checks (poll_peers).
    resync_period: float = 3600.0
    # Namespaces whose DRControls and VRGs are watched; empty means all namespaces.
    watch_namespaces: tuple[str, ...] = ()


class Manager:
    def __init__(self, api_client: k8s.ApiClient, options: Options, config: OperatorConfig,
                 metrics: Metrics | None = None) -> None:
        self.options = options
        self.config = config
        self.metrics = metrics or Metrics()
        self.client = KubeClient(api_client)
        self.metrics.count_kube_requests(self.client.stats)
        self.cache = Cache(self.client, resync_period=options.resync_period)
        self.echoes = Echoes()
        self.applier = Applier(self.client, self.echoes)
        # Events are sent off the reconcile path (a few threads): a reconcile never waits on one.
        self.events = EventRecorder(self.client, "ramen-operator", host=options.cluster_name, senders=4)
        self.stop_event = threading.Event()
        #: Set when leadership ended without a stop request.
        self.lost_leadership = False
        self._threads: list[threading.Thread] = []
        self._last_heartbeat_ok = False
        # The peer staleness each poll last saw: a flip (either way) re-reconciles every app.
        self._peer_stale: dict[str, bool] = {}
        # Peers whose last poll failed: the flip (either way) re-reconciles every app, not every failure.
        self._poll_failed: set[str] = set()
        self._rotation = 0  # where the rotating dr-state check continues
        hmac_key = self._secret_value(config.hmac_secret.namespace, config.hmac_secret.name, "hmacKey") \
            if config.hmac_secret else None

        def store_factory(profile: str) -> ObjectStore:
            store = profile_store_factory(config.profiles, self._read_secret)(profile)
            self.metrics.instrument_s3(store.client)
            return store

        self.peerings = PeeringRegistry(options.cluster_name, store_factory, PeeringSettings(
            key_prefix=config.key_prefix, hmac_key=hmac_key, poll_interval=options.poll_interval,
            stale_after=options.stale_after, digest_linger=DIGEST_LINGER if options.workers > 1 else 0.0,
            on_peer_changes=self._peer_changes))
        self.notifier: WebhookNotifier | None = None
        if config.webhook is not None:
            ref = config.webhook.secret
            key = self._secret_value(ref.namespace, ref.name, "hmacKey") if ref else None
            self.notifier = WebhookNotifier(config.webhook.url, key, options.cluster_name)
        self.nudger = PeerNudger(self.cache, self._read_secret)
        self.metrics.count_nudges(self.nudger.counts)
        self.drcontrol = DRControlController(
            options.cluster_name, self.client, self.cache, self.applier, self.events, self.peerings,
            poll_interval=options.poll_interval, now=utc_now, namespaces=options.watch_namespaces or (None,),
            on_ready_change=self.notifier.notify if self.notifier else None, nudge=self.nudger.nudge,
            heartbeat_ok=lambda: self._last_heartbeat_ok,
            # Read when first needed: a missing seed is a DRControl condition, not a refusal to start.
            volsync_keys=VolSyncKeys(config.volsync_seed, self._read_secret))
        self.drpolicy = DRPolicyController(options.cluster_name, self.cache, self.applier, self.peerings,
                                           now=lambda: datetime.now(UTC))
        self.drcluster = DRClusterController(options.cluster_name, self.client, self.cache, self.applier,
                                             self.peerings, now=lambda: datetime.now(UTC),
                                             poll_interval=options.poll_interval, read_secret=self._read_secret)
        self.controllers: list[Controller] = []
        self._optional_classes: list[ResourceType] = []

    # -- secrets (read directly: the operator needs only a few, by name) ---------------
    def _read_secret(self, namespace: str, name: str) -> Obj:
        return self.client.get(SECRETS, name, namespace or self.options.namespace)

    def _secret_value(self, namespace: str, name: str, key: str) -> bytes:
        import base64

        data = (self._read_secret(namespace, name).get("data") or {})
        if key not in data:
            raise ValueError(f"Secret {namespace}/{name} has no key {key}")
        return base64.b64decode(data[key])

    # -- wiring ------------------------------------------------------------------------
    def _served(self, rt: ResourceType) -> bool:
        try:
            self.client.list(rt, limit=1)
            return True
        except ApiError as e:
            if e.not_found:
                return False
            raise

    def _build_controllers(self) -> None:
        drc_keys = self.drcontrol.keys_for_all

        def all_drcontrols(_: Event) -> Iterable[str]:
            return drc_keys()

        def all_drcontrols_if_relevant(event: Event) -> Iterable[str]:
            # A DRPolicy or DRCluster status refresh (the probe's latency, peer storage classes) would
            # otherwise requeue every app; DRControls read only their spec and the Validated verdict.
            return drc_keys() if affects_drcontrols(event) else ()

        def all_of(rt: ResourceType) -> Callable[[Event], Iterable[str]]:
            return lambda _: [o["metadata"]["name"] for o in self.cache.list(rt)]

        fences = self._served(NETWORKFENCE)
        c = Controller("drcontrol", self._observed(self.metrics.timed("drcontrol", self.drcontrol.reconcile)),
                       self.cache, workers=self.options.workers)
        self.drcontrol.routine = c.queue.routine
        vrg_echoes = self.echoes.unless_echo(VRG)

        def vrg_events(event: Event) -> Iterable[str]:
            # The DRControl of the same key is resynced by its own informer: once per period is enough.
            return () if event.type == EventType.RESYNC else vrg_echoes(event)

        for ns in self.options.watch_namespaces or (None,):
            # The echo of our own write brings nothing the reconcile that wrote it did not know.
            c.watch(DRCONTROL, self.echoes.unless_echo(DRCONTROL), namespace=ns)
            # A VRG event is the step asked of Ramen reporting back: finish that app before new ones.
            c.watch(VRG, vrg_events, namespace=ns, urgent=True)
        c.watch(DRPOLICY, all_drcontrols_if_relevant)
        c.watch(DRCLUSTER, all_drcontrols_if_relevant)
        if fences:
            c.watch(NETWORKFENCE, all_drcontrols)
        p = Controller("drpolicy", self.metrics.timed("drpolicy", self.drpolicy.reconcile), self.cache, workers=1)
        p.watch(DRPOLICY)
        p.watch(DRCLUSTER, all_of(DRPOLICY))
        d = Controller("drcluster", self.metrics.timed("drcluster", self.drcluster.reconcile), self.cache,
                       workers=1)
        d.watch(DRCLUSTER)
        if fences:
            d.watch(NETWORKFENCE, all_of(DRCLUSTER))
        self.controllers = [c, p, d]
        self.cache.informer(STORAGECLASSES)
        self._optional_classes = [rt for rt in (VOLUMESNAPSHOTCLASSES, VOLUMEREPLICATIONCLASSES) if self._served(rt)]
        for rt in self._optional_classes:
            self.cache.informer(rt)

    def _observed(self, fn: Callable[[str], Any]) -> Callable[[str], Any]:
        def wrapped(key: str) -> Any:
            out = fn(key)
            ns, _, name = key.partition("/")
            drc = self.cache.get(DRCONTROL, name, ns)
            if drc is not None and drc.get("status"):
                self.metrics.observe_drcontrol(ns, name, self.options.cluster_name, drc["status"])
            elif drc is None:
                self.metrics.forget_drcontrol(ns, name)
            return out

        return wrapped

    # -- periodic work -------------------------------------------------------------------
    def _every(self, name: str, interval: float, fn: Callable[[], None], stop: threading.Event) -> None:
        def loop() -> None:
            while not stop.is_set():
                try:
                    fn()
                except Exception as e:  # a loop must survive S3 and API outages
                    log.warning("%s failed: %s", name, e)
                stop.wait(interval)

        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def publish_metadata(self) -> None:
        """Heartbeat and storage classes for every coordination store in use."""
        classes = [_class_summary(o) for rt in (STORAGECLASSES, *self._optional_classes) for o in self.cache.list(rt)]
        ok = True
        for profile, coord in self.peerings.coordinators().items():
            try:
                coord.heartbeat(operator_version=__version__, ready=self.cache.has_synced())
                self.metrics.store_reachable.labels(profile).set(1)
            except EnvelopeTooLarge as e:
                # The heartbeat was written; only the digest was not (DRCluster status says so).
                log.error("digest not written: %s", e)
                self.metrics.store_reachable.labels(profile).set(1)
            except S3PeerError as e:
                ok = False
                self.metrics.store_reachable.labels(profile).set(0)
                log.warning("heartbeat failed: %s", e)
            try:  # separate: a problem with one key must not silence the heartbeat
                coord.write_storage_classes(classes)
            except S3PeerError as e:
                log.warning("publishing storage classes failed: %s", e)
        self._last_heartbeat_ok = ok

    def poll_peers(self) -> None:
        """Poll each peer once; reconcile the apps whose peer objects changed (all, when health flipped)."""
        queue = self.controllers[0].queue
        for peering in self.peerings.all():
            was_stale = self._peer_stale.get(peering.peer)
            try:
                snap = peering.reader.poll()
            except S3PeerError as e:
                log.warning("peer poll of %s failed: %s", peering.peer, e)
                if peering.peer not in self._poll_failed:
                    self._poll_failed.add(peering.peer)
                    for key in self.drcontrol.keys_for_all():
                        queue.add(key)
                continue
            if peering.peer in self._poll_failed:
                self._poll_failed.discard(peering.peer)
                was_stale = None  # back: every app looks again, as after a staleness flip
            self.metrics.heartbeat_age.labels(peering.peer).set(snap.health.unchanged_for)
            self._peer_stale[peering.peer] = snap.health.stale
            self.metrics.peer_stale.labels(peering.peer).set(1 if snap.health.stale else 0)
            if snap.health.stale != was_stale:
                for key in self.drcontrol.keys_for_all():
                    queue.add(key)
            # The apps this poll found changed were queued by _peer_changes, as for every poll.
        self._rotate(queue.add)

    def _peer_changes(self, _peer: str, apps: frozenset[AppKey]) -> None:
        """Any poll of a peer, whoever took it (this loop, a reconcile, a nudge): reconcile what changed.

        Queued as routine: a report tells what the peer did, not that dr-state changed, so the
        reconcile plans from the dr-state it holds unless that plan would act, or the report names
        a later generation (DRControlController.reconcile). A relocate of 1,000 apps brought each
        app a few such reconciles, each with a dr-state read.
        """
        if not self.controllers:
            return  # not started: every app is reconciled once its informer syncs
        queue = self.controllers[0].queue
        for app in apps:
            queue.add(f"{app.namespace}/{app.name}", routine=True)

    def _rotate(self, add: Callable[[str], None]) -> None:
        """Reconcile the next few apps in turn, whatever changed.

        Steady apps are otherwise reconciled only at the resync (an hour): a dr-state replaced or
        corrupted behind our back would go unnoticed that long. Each check is one conditional GET
        (a 304 when unchanged), so this costs ROTATING_CHECKS requests per poll whatever the number
        of apps, and every app is looked at within ceil(apps / ROTATING_CHECKS) poll intervals.
        """
        keys = sorted(self.drcontrol.keys_for_all())
        if not keys:
            return
        start = self._rotation % len(keys)
        for key in (keys[start:] + keys[:start])[:ROTATING_CHECKS]:
            add(key)
        self._rotation = start + ROTATING_CHECKS

    # -- lifecycle ---------------------------------------------------------------------------
    def ready(self) -> bool:
        synced = self.cache.has_synced()
        return synced and (self._last_heartbeat_ok or not self.peerings.coordinators())

    def _run_controllers(self, stop: threading.Event) -> None:
        for c in self.controllers:
            c.start()
        # Every policy gets its peering early, so heartbeats start before the first app is protected.
        for pol in self.cache.list(DRPOLICY):
            self.controllers[1].queue.add(pol["metadata"]["name"])
        self._every("heartbeat", self.options.heartbeat_interval, self.publish_metadata, stop)
        self._every("peer-poll", self.options.poll_interval, self.poll_peers, stop)
        stop.wait()
        for c in self.controllers:
            c.stop()

    def run(self) -> None:
        """Run until `stop_event` is set."""
        self._build_controllers()
        if self.notifier:
            self.notifier.start()
        try:
            self._run()
        finally:
            self.nudger.stop()
            if self.notifier:
                self.notifier.stop(5.0)

    def _run(self) -> None:
        if not self.options.leader_elect:
            self._run_controllers(self.stop_event)
            self.cache.stop()
            return
        import socket

        def stopped_leading() -> None:
            # Not asked to stop: the Lease was lost (API server gone, or another holder). The process
            # must exit non-zero so its supervisor restarts it rather than count a clean shutdown.
            if not self.stop_event.is_set():
                self.lost_leadership = True
            self.stop_event.set()

        elector = LeaderElector(self.client, LeaseConfig(LEASE_NAME, self.options.namespace,
                                                         f"{socket.gethostname()}-{threading.get_native_id()}"),
                                on_started_leading=self._run_controllers,
                                on_stopped_leading=stopped_leading)
        elector.start()
        self.stop_event.wait()
        elector.stop()
        self.events.stop()
        self.cache.stop()


def _class_summary(obj: Obj) -> dict[str, Any]:
    out: dict[str, Any] = {"name": obj["metadata"]["name"], "kind": obj.get("kind", "")}
    # StorageClass: provisioner; VolumeSnapshotClass: driver; VolumeReplicationClass: spec.provisioner.
    for v in (obj.get("provisioner"), obj.get("driver"), (obj.get("spec") or {}).get("provisioner")):
        if isinstance(v, str) and v:
            out["provisioner"] = v
            break
    labels = obj["metadata"].get("labels") or {}
    for label, field in (("ramendr.openshift.io/storageid", "storageID"),
                         ("ramendr.openshift.io/replicationid", "replicationID")):
        if label in labels:
            out[field] = labels[label]
    return out


def serve_http(address: str, manager: Manager, authorizer: KubeAuthorizer | None = None, *,
               request_deadline: float = REQUEST_DEADLINE, max_connections: int = MAX_CONNECTIONS
               ) -> BoundedHTTPServer:
    """/healthz, /readyz and /metrics on one address (host:port; ':8080' means all interfaces).

    Probes answer anyone (the kubelet sends no credentials); /metrics, when an
    authorizer is given, only identities the API server allows to get /metrics.
    """
    host, _, port = address.rpartition(":")

    class Handler(BoundedHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, "text/plain", b"ok")
            elif self.path == "/readyz":
                ok = manager.ready()
                self._send(200 if ok else 503, "text/plain", b"ok" if ok else b"caches not synced or S3 unreachable")
            elif self.path == "/metrics":
                if authorizer is not None:
                    decision = authorizer.decide(self.headers.get("Authorization"), "/metrics")
                    if decision.status != 200:
                        self._send(decision.status, "application/json",
                                   json.dumps({"error": decision.reason}).encode())
                        return
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(manager.metrics.registry))
            else:
                self._send(404, "application/json", json.dumps({"error": "not found"}).encode())

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds would drown the log

    # Every request has request_deadline seconds in all; at most max_connections are served at once.
    server = BoundedHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), Handler,
                               request_deadline=request_deadline, max_connections=max_connections)
    threading.Thread(target=server.serve_forever, name=f"http-{address}", daemon=True).start()
    return server
