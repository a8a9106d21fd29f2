"""Scenarios beside Ramen's REAL VRG controller (its manager in dr-cluster mode, one per cluster).

Each cluster runs kube-controller-manager (static PVs bind to PVCs) and Ramen's manager built
from the pinned source; below Ramen, only the CSI replication layer is a test double
(e2e/csiaddons_double.py answers VolumeReplication objects as csi-addons does). Both ramen-p2p
operators run as processes. Every app has at least one bound PVC, so Ramen really creates
VolumeReplications, uploads PV/PVC metadata to S3 and restores them on the other cluster.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness, volumes
from e2e.localenv import LocalEnv, build, up
from e2e.localenv.clients import Cluster, kube_cluster
from e2e.localenv.procs import log_tail
from reconciler.config import CONFIG_KEY, CONFIGMAP_NAME, P2P_CONFIG_KEY, P2P_CONFIGMAP_NAME
from tests.e2e.conftest import DRPair, running_pair

CLUSTERS = ["east", "west"]
KEY_PREFIX = "p2p/"  # kept apart from Ramen's own `{ns}/{vrg}/` objects in the shared bucket
INTERVAL = "1m"
APP_LABELS = {"app": "my-app"}  # the example DRControl's pvcSelector
pytestmark = [pytest.mark.realenv, pytest.mark.slow]


@pytest.fixture(scope="module")
def ramen_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    tarball = build.ramen_tarball()
    if not tarball.exists():
        pytest.skip(f"Ramen's pinned source tarball is not at {tarball} (set ${build.RAMEN_TARBALL_ENV}); "
                    "Ramen's manager cannot be built without it")
    env = up(CLUSTERS, root=tmp_path_factory.mktemp("ramenenv"), with_ramen=True)
    yield env
    env.down()


@pytest.fixture(scope="module")
def real_clusters(ramen_env: LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cluster]]:
    clusters = {n: kube_cluster(n, ramen_env.kubeconfig(n)) for n in CLUSTERS}
    for c in clusters.values():
        harness.configure_cluster(c, ramen_env.s3, key_prefix=KEY_PREFIX, scheduling_interval=INTERVAL,
                                  test_crds=False)
        volumes.install_classes(c, INTERVAL)
    logdir = tmp_path_factory.mktemp("csiaddons")
    doubles = [harness.Process(f"csiaddons-double-{n}", [
        sys.executable, "-m", "e2e.csiaddons_double", "--kubeconfig", str(c.kubeconfig),
        "--interval", "0.5"], logdir / f"csiaddons-double-{n}.log") for n, c in clusters.items()]
    for d in doubles:
        d.start()
    yield clusters
    for d in doubles:
        d.stop()


@pytest.fixture
def pair(ramen_env: LocalEnv, real_clusters: dict[str, Cluster], tmp_path: Path,
         request: pytest.FixtureRequest) -> Iterator[DRPair]:
    ns = f"r-{request.node.name[5:25].replace('_', '-').strip('-')}-{secrets.token_hex(3)}"
    for c in real_clusters.values():
        c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    def ramen_logs() -> str:
        return "\n".join(f"--- ramen manager {n} ---\n" + log_tail(Path(ramen_env.component(f"{n}-ramen").log), 20)
                         for n in CLUSTERS)

    with running_pair(real_clusters, ns, ramen_env, tmp_path, request, on_failure=ramen_logs) as p:
        yield p
    for c in real_clusters.values():
        c.core.delete_namespace(ns)


def vrg_generation(p: DRPair, cluster: str) -> int:
    v = p.vrg(cluster) or {}
    return int((v.get("metadata") or {}).get("generation") or 0)


def protected_pvcs(p: DRPair, cluster: str) -> set[str]:
    v = p.vrg(cluster) or {}
    return {str(x.get("name")) for x in (v.get("status") or {}).get("protectedPVCs") or []}


def vrg_condition(p: DRPair, cluster: str, ctype: str) -> dict[str, Any]:
    return harness.condition(p.vrg(cluster) or {}, ctype)


def volume_replications(p: DRPair, cluster: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = p.clusters[cluster].custom.list_namespaced_custom_object(
        "replication.storage.openshift.io", "v1alpha1", p.namespace, "volumereplications")["items"]
    return items


def ramen_s3_keys(p: DRPair, kind: str) -> list[str]:
    """Objects Ramen's VRG controller uploaded for the app (its own layout: {ns}/{vrg}/{kind}/...)."""
    out = p.s3.list_objects_v2(Bucket=p.env.s3["bucket"], Prefix=f"{p.namespace}/app/{kind}/")
    return [str(o["Key"]) for o in out.get("Contents", [])]


def protect_with_a_bound_pvc(p: DRPair) -> None:
    east = p.clusters["east"]
    volumes.static_pvc(east, p.namespace, "data", APP_LABELS)
    p.wait(lambda: volumes.pvc_phase(east, p.namespace, "data") == "Bound", "PVC data bound on east", 60)
    p.protect(preferred="east")
    p.wait(lambda: p.primary_ready("east", 1), "east Primary at generation 1 on Ramen's VRG", 180)
    p.wait(lambda: p.secondary_settled("west", 1), "west Secondary at generation 1 on Ramen's VRG", 120)


def test_protect_on_ramens_vrg_protects_a_bound_pvc_with_a_stable_vrg_generation(pair: DRPair) -> None:
    protect_with_a_bound_pvc(pair)
    pair.wait(lambda: "data" in protected_pvcs(pair, "east"), "Ramen lists PVC data as protected", 60)
    (vr,) = volume_replications(pair, "east")
    assert vr["spec"]["replicationState"] == "primary" and vr["status"]["state"] == "Primary"
    pair.wait(lambda: vrg_condition(pair, "east", "ClusterDataProtected").get("status") == "True",
              "Ramen uploads the PV/PVC metadata to S3", 120)
    assert ramen_s3_keys(pair, "v1.PersistentVolume"), "Ramen uploaded no PV to S3"
    # Both controllers keep running: the VRG spec must settle, not bounce between their writes.
    gens = {c: vrg_generation(pair, c) for c in CLUSTERS}
    time.sleep(10)
    assert {c: vrg_generation(pair, c) for c in CLUSTERS} == gens
    assert pair.primary_ready("east", 1)


def test_a_pvc_added_to_a_serving_primary_leaves_ready_for_application_true(pair: DRPair) -> None:
    protect_with_a_bound_pvc(pair)
    pair.wait(lambda: "data" in protected_pvcs(pair, "east"), "PVC data protected", 60)
    east = pair.clusters["east"]
    volumes.static_pvc(east, pair.namespace, "logs", APP_LABELS)
    deadline = time.monotonic() + 120
    unhealthy_seen = False  # the window this test is about: Ramen's VRG not ready while the PVC joins
    while not (unhealthy_seen and pair.primary_ready("east", 1) and "logs" in protected_pvcs(pair, "east")):
        assert time.monotonic() < deadline, f"PVC logs never joined (VRG unhealthy seen: {unhealthy_seen})\n" + \
            pair.diagnostics()
        drc = pair.drc("east")
        assert harness.ready_for_application(drc), "ReadyForApplication dropped while a PVC joined\n" + \
            pair.diagnostics()
        if harness.condition(drc, "VRGHealthy").get("status") == "False":
            unhealthy_seen = True
            assert harness.condition(drc, "Ready").get("status") == "False"
            assert harness.condition(drc, "ReadyForApplication").get("reason") == "Serving"
        time.sleep(0.1)


def test_relocate_then_failover_with_the_peer_operator_killed(pair: DRPair) -> None:
    protect_with_a_bound_pvc(pair)
    pair.wait(lambda: vrg_condition(pair, "east", "ClusterDataProtected").get("status") == "True",
              "east's PV/PVC metadata in S3 before the relocate", 120)
    for c in CLUSTERS:
        harness.set_action(pair.clusters[c], pair.namespace, "Relocate", "west")
    east = pair.clusters["east"]
    # Ramen demotes a VolRep PVC only once the application has let go of it (the PVC is deleted);
    # until then the DRControl says so instead of waiting silently.
    pair.wait(lambda: "PVC is not deleted" in harness.condition(pair.drc("east"), "VRGHealthy").get("message", ""),
              "east's DRControl says why its VRG does not demote", 120)
    assert harness.condition(pair.drc("east"), "ReadyForApplication")["reason"] == "Relocating"
    # What the deployment tooling does on ReadyForApplication False: the application leaves east.
    east.core.delete_namespaced_persistent_volume_claim("data", pair.namespace)
    pair.wait(lambda: pair.primary_ready("west", 2), "west Primary at generation 2 after the relocate", 240)
    west = pair.clusters["west"]
    # Ramen restored the PV and PVC from S3 on west; kube-controller-manager bound them.
    assert volumes.pvc_phase(west, pair.namespace, "data") == "Bound"
    assert vrg_condition(pair, "west", "ClusterDataReady").get("reason") == "Restored"
    pair.wait(lambda: pair.secondary_settled("east", 2), "east Secondary at generation 2", 120)

    pair.operators["west"].kill()
    harness.set_action(pair.clusters["east"], pair.namespace, "Failover", "east")
    pair.wait(lambda: pair.primary_ready("east", 3), "east Primary at generation 3 with west's operator dead", 240)
    pair.wait(lambda: volumes.pvc_phase(east, pair.namespace, "data") == "Bound",
              "Ramen restored PVC data on east from S3 and it is bound", 60)


def test_restarting_ramens_manager_leaves_our_settings_in_force(pair: DRPair, ramen_env: LocalEnv) -> None:
    east = pair.clusters["east"]
    protect_with_a_bound_pvc(pair)
    ramen_env.stop("east-ramen")
    ramen_env.start("east-ramen")
    # Ramen rewrote its ConfigMap on start; ours is untouched, and the operator restarted now reads it.
    ramen_cfg = yaml.safe_load(east.core.read_namespaced_config_map(CONFIGMAP_NAME, harness.OPERATOR_NS)
                               .data[CONFIG_KEY])
    assert "p2p" not in ramen_cfg and ramen_cfg["s3StoreProfiles"][0]["s3ProfileName"] == harness.PROFILE
    ours = yaml.safe_load(east.core.read_namespaced_config_map(P2P_CONFIGMAP_NAME, harness.OPERATOR_NS)
                          .data[P2P_CONFIG_KEY])
    assert ours == {"keyPrefix": KEY_PREFIX}
    pair.operators["east"].stop()
    pair.operators["east"].start()
    bucket = pair.env.s3["bucket"]

    def heartbeat_under_prefix() -> float:
        head = pair.s3.head_object(Bucket=bucket, Key=f"{KEY_PREFIX}cluster-info/east/health")
        return float(head["LastModified"].timestamp())

    restarted = time.time()
    pair.wait(lambda: heartbeat_under_prefix() >= restarted - 1, "east's heartbeat under the key prefix", 30)
    pair.wait(lambda: pair.primary_ready("east", 1), "east still Primary at generation 1 after the restarts", 60)
    assert pair.s3.head_object(Bucket=bucket, Key=f"{KEY_PREFIX}{pair.namespace}/app/dr-state")



def test_kill_9_of_either_operator_at_each_step_of_a_relocate_converges(pair: DRPair) -> None:
    protect_with_a_bound_pvc(pair)
    pair.wait(lambda: vrg_condition(pair, "east", "ClusterDataProtected").get("status") == "True",
              "east's PV/PVC metadata in S3 before the relocate", 120)
    for c in CLUSTERS:
        harness.set_action(pair.clusters[c], pair.namespace, "Relocate", "west")
    # Step 1: east is killed as soon as it starts the relocate (final sync asked, nothing demoted).
    pair.wait(lambda: (pair.drc("east").get("status") or {}).get("phase") == "Relocating", "east relocating", 60)
    pair.operators["east"].kill()
    pair.operators["east"].start()
    pair.wait(lambda: "PVC is not deleted" in harness.condition(pair.drc("east"), "VRGHealthy").get("message", ""),
              "east, restarted, waits for the application to let go of its PVC", 120)
    pair.clusters["east"].core.delete_namespaced_persistent_volume_claim("data", pair.namespace)
    # Step 2: west is killed once east has demoted (the release is published or about to be).
    pair.wait(lambda: ((pair.vrg("east") or {}).get("status") or {}).get("state") == "Secondary",
              "Ramen reports east's VRG Secondary", 180)
    pair.operators["west"].kill()
    pair.operators["west"].start()
    pair.wait(lambda: pair.primary_ready("west", 2), "west, restarted, Primary at generation 2", 240)
    # Step 3: west is killed again right after its promotion; east too: both restart from S3 alone.
    pair.operators["west"].kill()
    pair.operators["east"].kill()
    pair.operators["west"].start()
    pair.operators["east"].start()
    pair.wait(lambda: pair.primary_ready("west", 2) and pair.secondary_settled("east", 2),
              "both settle at generation 2 after both were killed", 180)
    assert volumes.pvc_phase(pair.clusters["west"], pair.namespace, "data") == "Bound"


def test_an_s3_outage_freezes_roles_on_ramens_vrg_and_a_failover_proceeds_after_it(
        pair: DRPair, ramen_env: LocalEnv) -> None:
    protect_with_a_bound_pvc(pair)
    ramen_env.stop("s3")
    try:
        harness.set_action(pair.clusters["west"], pair.namespace, "Failover", "west")
        pair.wait(lambda: harness.condition(pair.drc("west"), "S3Reachable").get("status") == "False",
                  "west says S3 does not answer", 90)
        time.sleep(5)
        # Nothing changed role blind: west is still Secondary, east still serves.
        assert (pair.vrg("west") or {})["spec"]["replicationState"] == "secondary"
        assert (pair.vrg("east") or {})["spec"]["replicationState"] == "primary"
        assert harness.ready_for_application(pair.drc("east"))
    finally:
        ramen_env.start("s3")
    pair.wait(lambda: pair.primary_ready("west", 2), "west Primary at generation 2 once S3 is back", 240)
    # East learns of generation 2 and demotes once the application has left it.
    pair.wait(lambda: not harness.ready_for_application(pair.drc("east")), "east withdraws ReadyForApplication", 60)
    pair.clusters["east"].core.delete_namespaced_persistent_volume_claim("data", pair.namespace)
    pair.wait(lambda: pair.secondary_settled("east", 2), "east Secondary at generation 2", 180)


def test_deleting_the_drcontrols_removes_ramens_vrgs_and_our_keys(pair: DRPair) -> None:
    protect_with_a_bound_pvc(pair)
    bucket = pair.env.s3["bucket"]
    ours = f"{KEY_PREFIX}{pair.namespace}/app/"
    assert pair.s3.list_objects_v2(Bucket=bucket, Prefix=ours).get("Contents")
    for c in pair.clusters.values():
        c.custom.delete_namespaced_custom_object(harness.GROUP, harness.VERSION, pair.namespace, "drcontrols", "app")

    def gone() -> bool:
        for c in CLUSTERS:
            try:
                harness.get_drc(pair.clusters[c], pair.namespace)
                return False
            except ApiException as e:
                if e.status != 404:
                    raise
        return all(pair.vrg(c) is None for c in CLUSTERS)

    # Ramen's VRG finalizer runs (its own cleanup) before ours lets the DRControl go.
    pair.wait(gone, "both DRControls and both of Ramen's VRGs are gone", 240)
    left = [o["Key"] for o in pair.s3.list_objects_v2(Bucket=bucket, Prefix=ours).get("Contents", [])]
    assert left == [], f"coordination keys left behind: {left}"
