"""Hostile objects in the real coordination bucket, read by the operator's own code on the real API servers.

A third party with write access to the bucket (or a buggy tool) puts objects there that are
corrupt, well-formed but wrong, huge, or that name clusters outside the DRPolicy. Each case
checks what the DRControl reconciler's S3 view (`DRControlController.coordination`) and the
planner make of it: no exception, no role change, a reason that names the problem, and normal
operation once the object is repaired.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as k8s_config

from e2e import harness
from e2e.localenv.clients import Cluster
from e2e.s3count import counting_store
from reconciler.api import DRCLUSTER, NETWORKFENCE
from reconciler.controllers.drcluster import DRClusterController
from reconciler.controllers.drcontrol import DRControlController
from reconciler.controllers.peering import Peering, PeeringError, PeeringRegistry, PeeringSettings
from reconciler.kube import Applier, Cache, EventRecorder, KubeClient
from reconciler.manager import SECRETS
from reconciler.plan.drcontrol import plan
from reconciler.plan.inputs import PlanInput, PolicyView, VRGView
from reconciler.s3peer import AppKey, ClusterStatus, Coordinator, Kind, ObjectStore, PeerReader, Role, S3PeerError
from reconciler.s3peer.digestpages import page_key, page_of
from reconciler.s3peer.envelope import MAX_OBJECT_BYTES, EnvelopeTooLarge, encode
from reconciler.s3peer.models import DRState

pytestmark = pytest.mark.realenv
APP = AppKey("shop", "web")
NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
T = "2026-11-25T12:00:00Z"


# -- the operator's pieces on the real servers ------------------------------------------
class Side:
    """One cluster's controller and peering on the shared bucket, under a test's own key prefix."""

    def __init__(self, cluster: str, peer: str, kube: Cluster, store: ObjectStore, key_prefix: str) -> None:
        self.cluster, self.peer, self.store = cluster, peer, store
        api = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig))
        self.client = KubeClient(api)
        self.cache = Cache(self.client)
        self.registry = PeeringRegistry(cluster, lambda _profile: store,
                                        PeeringSettings(key_prefix=key_prefix, poll_interval=0.0))
        self.controller = DRControlController(cluster, self.client, self.cache, Applier(self.client),
                                              EventRecorder(self.client, "adversarial-test", host=cluster),
                                              self.registry)

    @property
    def peering(self) -> Peering:
        return self.registry.get("shared", self.peer)

    def fresh_peering(self) -> Peering:
        """As after an operator restart: nothing remembered from earlier reads."""
        self.registry = PeeringRegistry(self.cluster, lambda _p: self.store, self.registry.settings)
        self.controller.peerings = self.registry
        return self.peering

    def plan_for(self, vrg_state: str = "Primary", status: dict[str, Any] | None = None) -> tuple[Any, Any]:
        self.peering.reader.invalidate()
        co, _ = self.controller.coordination(self.peering, APP)
        desired = "primary" if vrg_state == "Primary" else "secondary"
        conds = [{"type": t, "status": "True", "observedGeneration": 1}
                 for t in ("DataReady", "ClusterDataReady", "ClusterDataProtected")]
        vrg = VRGView({"metadata": {"name": APP.name, "namespace": APP.namespace, "generation": 1},
                       "spec": {"replicationState": desired},
                       "status": {"state": vrg_state, "observedGeneration": 1, "conditions": conds}})
        drc = {"metadata": {"name": APP.name, "namespace": APP.namespace, "generation": 1},
               "spec": {"drPolicyRef": {"name": "pol"}, "preferredCluster": "east",
                        "vrgSpec": {"replicationType": "async"}}, "status": status or {}}
        p = plan(PlanInput(cluster=self.cluster, drcontrol=drc,
                           policy=PolicyView(name="pol", found=True, clusters=("east", "west"),
                                             scheduling_interval="5m"),
                           vrg=vrg, coordination=co, peer_fenced=False, now=T))
        return co, p


@pytest.fixture
def stores(s3_settings: dict[str, str]) -> dict[str, tuple[ObjectStore, Counter[str]]]:
    return {"east": counting_store(s3_settings), "west": counting_store(s3_settings)}


@pytest.fixture
def sides(clusters: dict[str, Cluster], stores: dict[str, tuple[ObjectStore, Counter[str]]],
          key_prefix: str, s3_settings: dict[str, str]) -> Iterator[dict[str, Side]]:
    for c in clusters.values():
        harness.configure_cluster(c, s3_settings)  # CRDs and the DRCluster objects
    out = {"east": Side("east", "west", clusters["east"], stores["east"][0], key_prefix),
           "west": Side("west", "east", clusters["west"], stores["west"][0], key_prefix)}
    yield out
    for s in out.values():
        s.cache.stop()


def drcluster_controller(side: Side) -> DRClusterController:
    """The DRCluster controller with a started cache, as the operator runs it."""
    side.cache.stop()
    side.cache = Cache(side.client)
    side.cache.informer(DRCLUSTER)
    side.cache.informer(NETWORKFENCE)
    side.cache.start()
    assert side.cache.wait_for_sync(30)
    return DRClusterController(side.cluster, side.client, side.cache, Applier(side.client), side.registry,
                               now=lambda: dt.datetime.now(dt.UTC),
                               read_secret=lambda ns, name: side.client.get(SECRETS, name, ns))


def cond(p: Any, ctype: str) -> dict[str, Any]:
    return next(c for c in p.status["conditions"] if c["type"] == ctype)


def settle(sides: dict[str, Side]) -> bytes:
    """east Primary at generation 1, both reporting; returns the stored dr-state bytes."""
    e, w = sides["east"].peering.coordinator, sides["west"].peering.coordinator
    assert e.claim_initial(APP).won
    e.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1, {"vrgHealthy": True}))
    w.write_cluster_status(APP, ClusterStatus(Role.SECONDARY, 1, {"vrgHealthy": True}))
    e.heartbeat(operator_version="t")
    w.heartbeat(operator_version="t")
    obj = e.store.get(e.keys.dr_state(APP))
    assert obj is not None and not isinstance(obj, type(None))
    return obj.data  # type: ignore[union-attr]


def _dr_state(**over: Any) -> bytes:
    body: dict[str, Any] = {"primary": "west", "generation": 2, "action": "Failover", "previousPrimary": "east",
                            "intentNonce": None, "changedAt": T}
    body.update(over)
    return encode(Kind.DR_STATE, "mallory", body, now=NOW)[0]


def _envelope(**over: Any) -> bytes:
    doc: dict[str, Any] = json.loads(_dr_state())
    doc.update(over)
    return json.dumps(doc).encode()


# (name, bytes put at dr-state, condition reason expected, words the message must contain)
HOSTILE_DR_STATES: list[tuple[str, bytes, str, str]] = [
    ("primary-outside-policy", _dr_state(primary="mallory"), "UnknownPrimary", "mallory"),
    ("primary-40kB", _dr_state(primary="m" * 40_000), "CorruptObject", "cluster name"),
    ("primary-uppercase", _dr_state(primary="West"), "CorruptObject", "cluster name"),
    ("previous-primary-path", _dr_state(previousPrimary="../../x"), "CorruptObject", "cluster name"),
    ("generation-beyond-int64", _dr_state(generation=2**64), "CorruptObject", "generation"),
    ("generation-negative", _dr_state(generation=-5), "CorruptObject", "generation"),
    ("generation-float", _dr_state(generation=2.5), "CorruptObject", "generation"),
    ("generation-string", _dr_state(generation="2"), "CorruptObject", "generation"),
    ("initial-at-generation-2", _dr_state(action="Initial"), "CorruptObject", "Initial"),
    ("unknown-action", _dr_state(action="Explode"), "CorruptObject", "action"),
    ("changed-at-huge", _dr_state(changedAt="t" * 100_000), "CorruptObject", "changedAt"),
    ("not-json", b"\x00\xff garbage", "CorruptObject", "JSON"),
    ("json-array", b"[1, 2, 3]", "CorruptObject", "not a JSON object"),
    ("duplicate-keys", _dr_state()[:-1] + b',"body":{}}', "CorruptObject", "duplicate"),
    ("nan-constant", _dr_state().replace(b'"generation":2', b'"generation":NaN'), "CorruptObject", "NaN"),
    ("unknown-api-version", _envelope(apiVersion="p2p.ramendr.openshift.io/v9"), "CorruptObject", "apiVersion"),
    ("wrong-kind", _envelope(kind="Health"), "CorruptObject", "kind"),
    ("unknown-envelope-field", _envelope(extra=1), "CorruptObject", "unknown fields"),
    ("writer-huge", _envelope(writer="w" * 5000), "CorruptObject", "writer"),
    ("written-at-not-a-time", _envelope(writtenAt="yesterday"), "CorruptObject", "RFC 3339"),
    ("malformed-signature", _envelope(signature="md5:abc"), "CorruptObject", "signature"),
    ("over-1MiB", b" " * (MAX_OBJECT_BYTES + 1), "CorruptObject", "byte limit"),
    ("body-not-object", _envelope(body=[1]), "CorruptObject", "body"),
]


@pytest.mark.parametrize("case", HOSTILE_DR_STATES, ids=[c[0] for c in HOSTILE_DR_STATES])
def test_hostile_dr_state_freezes_roles_with_a_reason_and_recovers_when_repaired(
        sides: dict[str, Side], case: tuple[str, bytes, str, str]) -> None:
    _, data, reason, words = case
    good = settle(sides)
    east = sides["east"]
    store = east.peering.coordinator.store
    key = east.peering.coordinator.keys.dr_state(APP)
    store.put(key, data)

    for name, vrg_state in (("east", "Primary"), ("west", "Secondary")):
        co, p = sides[name].plan_for(vrg_state)
        assert co.error is not None and co.error.reason == reason, co.error
        assert words.lower() in co.error.message.lower()
        assert p.vrg is None and p.coordination == []  # nothing promoted, demoted or written
        stalled = cond(p, "Stalled")
        assert stalled["status"] == "True" and stalled["reason"] == reason
        assert len(stalled["message"]) <= 4096
        assert cond(p, "ReadyForApplication")["status"] == "False"

    store.put(key, good)
    co, p = east.plan_for("Primary")
    assert co.error is None and p.vrg is not None and p.vrg["spec"]["replicationState"] == "primary"
    assert cond(p, "Stalled")["status"] == "False" and cond(p, "ReadyForApplication")["status"] == "True"
    co, p = sides["west"].plan_for("Secondary")
    assert p.vrg is not None and p.vrg["spec"]["replicationState"] == "secondary"


# -- our own digest: a forged release must not demote us ------------------------------------
def _forge_page_entry(coord: Coordinator, cluster: str, app: AppKey, **fields: Any) -> None:
    """Rewrite one entry in the page that holds it, keeping the page's sequence (what a third party
    with write access to the bucket, but no HMAC key, can do)."""
    index = json.loads(coord.store.get(coord.keys.digest(cluster)).data)["body"]  # type: ignore[union-attr]
    key = page_key(coord.keys, cluster, index["pageCount"], page_of(app, index["pageCount"]))
    body = json.loads(coord.store.get(key).data)["body"]  # type: ignore[union-attr]
    body["apps"][str(app)].update(fields)
    coord.store.put(key, encode(Kind.DIGEST_PAGE, cluster, body, now=NOW)[0])


@pytest.mark.parametrize("layout", ["page", "single object of an earlier version"])
def test_forged_release_in_our_own_digest_read_at_start_does_not_demote(sides: dict[str, Side], layout: str) -> None:
    settle(sides)
    east = sides["east"]
    coord = east.peering.coordinator
    # Someone rewrites east's digest: east "released" generation 1 (its cluster-status says primary).
    if layout == "page":
        _forge_page_entry(coord, "east", APP, statusHash="0123456789abcdef", role="secondary-ready",
                          observedGeneration=1)
    else:
        forged = {"apps": {str(APP): {"statusHash": "0123456789abcdef", "role": "secondary-ready",
                                      "observedGeneration": 1}}, "storageClassesHash": None}
        coord.store.put(coord.keys.digest("east"), encode(Kind.DIGEST, "east", forged, now=NOW)[0])
    east.fresh_peering()  # the operator restarts and reads its digest from S3

    co, p = east.plan_for("Primary")
    assert co.own_status is None
    assert p.vrg is not None and p.vrg["spec"]["replicationState"] == "primary"
    assert cond(p, "ReadyForApplication")["status"] == "True"
    # The planner republishes the truth, which repairs the digest entry.
    assert p.publish is not None and p.publish.role == Role.PRIMARY
    east.peering.coordinator.write_cluster_status(APP, p.publish)
    assert east.peering.coordinator.digest_entries()[APP].role == Role.PRIMARY


def test_a_genuine_release_is_still_honoured_after_a_restart(sides: dict[str, Side]) -> None:
    settle(sides)
    east = sides["east"]
    east.peering.coordinator.write_cluster_status(APP, ClusterStatus(Role.SECONDARY_READY, 1, {}))
    east.fresh_peering()
    co, p = east.plan_for("Secondary")
    assert co.own_status is not None and co.own_status.role == Role.SECONDARY_READY
    assert p.vrg is not None and p.vrg["spec"]["replicationState"] == "secondary"
    assert cond(p, "ReadyForApplication")["reason"] == "Released"


# -- the peer's objects ------------------------------------------------------------------
def _corrupt(store: ObjectStore, key: str) -> bytes:
    obj = store.get(key)
    store.put(key, b'{"apiVersion": "p2p.ramendr.openshift.io/v1", "kind": ')
    return obj.data  # type: ignore[union-attr]


@pytest.mark.parametrize("which", ["cluster-status", "digest", "digest page"])
def test_corrupt_peer_report_is_a_condition_not_a_role_change(sides: dict[str, Side], which: str) -> None:
    settle(sides)
    east, w = sides["east"], sides["west"].peering.coordinator
    key = {"cluster-status": w.keys.cluster_status(APP, "west"), "digest": w.keys.digest("west"),
           "digest page": page_key(w.keys, "west", 1, page_of(APP, 1))}[which]
    if which == "cluster-status":
        # The digest must point at new content for the reader to fetch it.
        w.write_cluster_status(APP, ClusterStatus(Role.SECONDARY, 1, {"vrgHealthy": True, "n": 2}))
    good = _corrupt(w.store, key)
    east.fresh_peering()
    _, p = east.plan_for("Primary")
    pc = cond(p, "PeerConnected")
    assert pc["status"] == "False" and pc["reason"] == "PeerObjectCorrupt" and "CorruptObject" in pc["message"]
    assert p.vrg is not None and p.vrg["spec"]["replicationState"] == "primary"
    assert cond(p, "ReadyForApplication")["status"] == "True"

    w.store.put(key, good)
    east.fresh_peering()
    _, p = east.plan_for("Primary")
    assert cond(p, "PeerConnected")["reason"] == "HeartbeatFresh"


def test_corrupt_peer_heartbeat_is_a_condition(sides: dict[str, Side]) -> None:
    settle(sides)
    east, w = sides["east"], sides["west"].peering.coordinator
    _corrupt(w.store, w.keys.health("west"))
    east.fresh_peering()
    _, p = east.plan_for("Primary")
    assert cond(p, "PeerConnected")["reason"] == "PeerObjectCorrupt"
    w.heartbeat(operator_version="t")  # the peer's next heartbeat repairs it
    east.peering.reader.poll()
    _, p = east.plan_for("Primary")
    assert cond(p, "PeerConnected")["reason"] == "HeartbeatFresh"


def test_ghost_digest_entries_are_not_fetched_every_poll(sides: dict[str, Side],
                                                         stores: dict[str, tuple[ObjectStore, Counter[str]]]) -> None:
    settle(sides)
    w = sides["west"].peering.coordinator
    ghosts = {f"ghost/app-{i}": {"statusHash": f"{i:016x}", "role": "secondary", "observedGeneration": 1}
              for i in range(400)}
    body = {"apps": {**ghosts, str(APP): w.digest_entries()[APP].to_body()}, "storageClassesHash": None}
    w.store.put(w.keys.digest("west"), encode(Kind.DIGEST, "west", body, now=NOW)[0])
    reader = sides["east"].fresh_peering().reader
    counts = stores["east"][1]
    reader.poll()
    counts.clear()
    for _ in range(3):
        reader.poll()
    assert sum(counts.values()) <= 6, counts  # health + digest per poll, nothing per ghost
    assert reader.snapshot().status(APP) is not None


# -- the digest size limit -----------------------------------------------------------------
def test_a_digest_of_8000_long_named_apps_is_written_in_pages_under_the_limit_and_read_whole(
        sides: dict[str, Side]) -> None:
    settle(sides)
    coord: Coordinator = sides["east"].peering.coordinator
    many = [AppKey(f"ns-{i:05d}-{'x' * 40}", f"app-{'y' * 40}") for i in range(8000)]
    with coord._lock:  # many apps reported since the last flush (as after a burst of reconciles)
        digest = coord._load_digest()
        for a in many:
            coord._set_entry(digest, a, digest[APP])
    assert coord.flush_digest() and coord.digest_problem is None
    sizes = [len(coord.store.get(k).data) for k in coord.store.list_keys(f"{coord.keys.cluster_info('east')}")  # type: ignore[union-attr]
             if "/digest" in k]
    assert sum(sizes) > 1024 * 1024 > max(sizes)  # the whole would not fit in one object
    reader = PeerReader(sides["west"].peering.reader.store, "east", keys=coord.keys)
    assert reader.poll().apps() == frozenset([*many, APP])


def test_a_digest_page_over_the_size_limit_is_a_store_error_with_a_condition_and_recovers(
        sides: dict[str, Side], clusters: dict[str, Cluster], monkeypatch: pytest.MonkeyPatch) -> None:
    settle(sides)
    east = sides["east"]
    coord: Coordinator = east.peering.coordinator
    # Pages cannot grow without bound: at the most pages there are, a page outgrows 1 MiB.
    monkeypatch.setattr("reconciler.s3peer.peer.page_count_for", lambda apps, current: 1)
    many = [AppKey(f"ns-{i:05d}-{'x' * 40}", f"app-{'y' * 40}") for i in range(8000)]
    with coord._lock:
        digest = coord._load_digest()
        for a in many:
            coord._set_entry(digest, a, digest[APP])
    with pytest.raises(S3PeerError) as e:
        coord.flush_digest()
    assert isinstance(e.value, EnvelopeTooLarge) and coord.digest_problem
    # The heartbeat itself still goes out (the operator logs the digest problem and carries on).
    with pytest.raises(EnvelopeTooLarge):
        coord.heartbeat(operator_version="t")
    assert coord.store.get(coord.keys.health("east")) is not None

    drcluster_controller(east).reconcile("east")
    live = east.client.get(DRCLUSTER, "east")
    c = next(c for c in live["status"]["conditions"] if c["type"] == "DigestPublished")
    assert c["status"] == "False" and c["reason"] == "EnvelopeTooLarge" and "8001 apps" in c["message"]

    coord.retain_apps([APP])  # fewer apps: the next flush fits
    assert coord.flush_digest() and coord.digest_problem is None
    drcluster_controller(east).reconcile("east")
    live = east.client.get(DRCLUSTER, "east")
    assert next(c for c in live["status"]["conditions"] if c["type"] == "DigestPublished")["status"] == "True"


# -- the peer's storage classes --------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"name": "no-provisioner"},
    {"name": "p" * 300, "provisioner": "x"},
    {"name": "ok-name", "provisioner": 7},
    {"name": "", "provisioner": "x"},
])
def test_malformed_peer_storage_class_is_left_out_and_the_status_write_succeeds(
        sides: dict[str, Side], bad: dict[str, Any]) -> None:
    settle(sides)
    east, w = sides["east"], sides["west"].peering.coordinator
    w.write_storage_classes([{"name": "good", "provisioner": "csi.example.com", "storageID": "s1"}, bad])
    dc = drcluster_controller(east)
    dc.reconcile("west")
    live = east.client.get(DRCLUSTER, "west")
    assert [c["name"] for c in live["status"]["peerStorageClasses"]] == ["good"]
    reach = next(c for c in live["status"]["conditions"] if c["type"] == "S3Reachable")
    assert "1 malformed entries" in reach["message"]
    # Repaired: the peer publishes well-formed classes only.
    w.write_storage_classes([{"name": "good", "provisioner": "csi.example.com"},
                             {"name": "fixed", "provisioner": "csi.example.com"}])
    east.peering.reader.invalidate()
    dc.reconcile("west")
    live = east.client.get(DRCLUSTER, "west")
    assert sorted(c["name"] for c in live["status"]["peerStorageClasses"]) == ["fixed", "good"]


def test_dr_state_model_accepts_what_we_write() -> None:
    # The bounds are not stricter than what an honest cluster writes.
    state = DRState("east", 2**53, DRState.from_body(json.loads(_dr_state())["body"]).action, "west", None, T)
    assert DRState.from_body(state.to_body()) == state


@pytest.mark.parametrize("peer", ["bad/name", "..", "Upper", "x" * 64])
def test_policy_peer_name_that_cannot_be_a_key_segment_is_a_peering_error(sides: dict[str, Side], peer: str) -> None:
    # The DRPolicy schema bounds drClusters' length only; such a name would raise deep in key building.
    with pytest.raises(PeeringError, match="DNS-1123 label"):
        sides["east"].registry.get("shared", peer)
    assert sides["east"].registry.get("shared", "west").peer == "west"


# -- peer credentials, checked before any nudge ------------------------------------------------
def _exec_kubeconfig(west: Cluster) -> bytes:
    cfg = harness.inline_kubeconfig(west.kubeconfig)
    cfg["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh",
                                        "args": ["-c", "touch /tmp/ramen-p2p-pwned"]}}
    return json.dumps(cfg).encode()


@pytest.mark.parametrize("case, reason", [
    ("exec", "UnsafeKubeconfig"),
    ("redirected", "UnsafeKubeconfig"),
    ("no-key", "UnsafeKubeconfig"),
    ("missing-secret", "SecretUnreadable"),
])
def test_unusable_peer_endpoint_is_a_drcluster_condition_and_recovers(
        sides: dict[str, Side], clusters: dict[str, Cluster], s3_settings: dict[str, str], case: str,
        reason: str) -> None:
    east_c, west_c = clusters["east"], clusters["west"]
    harness.configure_cluster(east_c, s3_settings, peer_kubeconfigs={"west": west_c.kubeconfig})
    east = sides["east"]
    if case == "exec":
        harness.put_secret(east_c, "west-kubeconfig", {"kubeconfig": _exec_kubeconfig(west_c)})
    elif case == "redirected":
        east.client.merge_patch(DRCLUSTER, "west", None,
                                {"spec": {"peerEndpoint": {"apiServer": "https://mallory.example:6443"}}})
    elif case == "no-key":
        harness.put_secret(east_c, "west-kubeconfig", {"other": b"x"})
    else:
        east.client.merge_patch(DRCLUSTER, "west", None,
                                {"spec": {"peerEndpoint": {"secretRef": {"name": "no-such-secret"}}}})
    try:
        drcluster_controller(east).reconcile("west")
        c = next(c for c in east.client.get(DRCLUSTER, "west")["status"]["conditions"]
                 if c["type"] == "PeerEndpointUsable")
        assert c["status"] == "False" and c["reason"] == reason and "no nudges are sent" in c["message"]
        assert not Path("/tmp/ramen-p2p-pwned").exists()

        harness.configure_cluster(east_c, s3_settings, peer_kubeconfigs={"west": west_c.kubeconfig})  # repaired
        drcluster_controller(east).reconcile("west")
        c = next(c for c in east.client.get(DRCLUSTER, "west")["status"]["conditions"]
                 if c["type"] == "PeerEndpointUsable")
        assert c["status"] == "True"
    finally:
        harness.configure_cluster(east_c, s3_settings)
