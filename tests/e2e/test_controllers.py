"""The operator's other controllers against the real clusters: DRPolicy, DRCluster fencing, metadata, probes."""

from __future__ import annotations

import functools
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv.procs import free_port
from reconciler.plan.drcluster import FENCED_MESSAGE, UNFENCED_MESSAGE
from tests.e2e.conftest import DRPair

G, V = harness.GROUP, harness.VERSION


def _policy(c: Any, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = c.custom.get_cluster_custom_object(G, V, "drpolicies", name)
    return obj


def _drcluster(c: Any, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = c.custom.get_cluster_custom_object(G, V, "drclusters", name)
    return obj


def _policy_validated(c: Any) -> Callable[[], bool]:
    return lambda: harness.condition(_policy(c, harness.POLICY), "Validated").get("status") == "True"


def test_drpolicy_is_validated_with_a_capability_probe_of_the_coordination_store(drpair: DRPair) -> None:
    for c in drpair.clusters.values():
        drpair.wait(_policy_validated(c), f"DRPolicy validated on {c.name}")
        pol = _policy(c, harness.POLICY)
        assert harness.condition(pol, "S3Reachable")["status"] == "True"
        assert "conditional" in harness.condition(pol, "Validated")["message"]


def test_drpolicy_naming_a_missing_drcluster_says_so(drpair: DRPair) -> None:
    east = drpair.clusters["east"]
    name = f"bad-policy-{secrets.token_hex(3)}"
    body = harness.load_example("drpolicy.yaml")
    body["metadata"] = {"name": name}
    body["spec"]["drClusters"] = ["east", "nowhere"]
    east.custom.create_cluster_custom_object(G, V, "drpolicies", body)
    try:
        drpair.wait(lambda: harness.condition(_policy(east, name), "Validated").get("reason") == "DRClusterMissing",
                    "the DRPolicy reports the missing DRCluster")
        assert "nowhere" in harness.condition(_policy(east, name), "Validated")["message"]
    finally:
        east.custom.delete_cluster_custom_object(G, V, "drpolicies", name)


def test_fencing_the_peer_creates_a_network_fence_and_unfencing_removes_it(drpair: DRPair) -> None:
    east = drpair.clusters["east"]
    fence = "network-fence-west"
    east.custom.patch_cluster_custom_object(G, V, "drclusters", "west", {"spec": {"clusterFence": "Fenced"}})
    try:
        def fence_obj() -> dict[str, Any]:
            obj: dict[str, Any] = east.custom.get_cluster_custom_object("csiaddons.openshift.io", "v1alpha1",
                                                                          "networkfences", fence)
            return obj

        drpair.wait(lambda: fence_obj()["spec"]["fenceState"] == "Fenced", "the NetworkFence is created on east")
        assert fence_obj()["spec"]["cidrs"] == _drcluster(east, "west")["spec"]["cidrs"]
        drpair.wait(lambda: _drcluster(east, "west")["status"]["phase"] == "Fencing",
                    "DRCluster west is Fencing until the fence succeeds")
        # csi-addons' controller would now fence at the storage layer and report success.
        east.custom.patch_cluster_custom_object_status("csiaddons.openshift.io", "v1alpha1", "networkfences", fence,
                                                       {"status": {"result": "Succeeded", "message": FENCED_MESSAGE}})
        drpair.wait(lambda: _drcluster(east, "west")["status"]["phase"] == "Fenced", "DRCluster west is Fenced")
        assert harness.condition(_drcluster(east, "west"), "Fenced")["status"] == "True"

        east.custom.patch_cluster_custom_object(G, V, "drclusters", "west", {"spec": {"clusterFence": "Unfenced"}})
        drpair.wait(lambda: fence_obj()["spec"]["fenceState"] == "Unfenced", "the NetworkFence is asked to unfence")
        east.custom.patch_cluster_custom_object_status("csiaddons.openshift.io", "v1alpha1", "networkfences", fence,
                                                       {"status": {"result": "Succeeded", "message": UNFENCED_MESSAGE}})

        def gone() -> bool:
            try:
                fence_obj()
                return False
            except ApiException as e:
                return bool(e.status == 404)

        drpair.wait(gone, "the NetworkFence is deleted once unfenced")
    finally:
        east.custom.patch_cluster_custom_object(G, V, "drclusters", "west", {"spec": {"clusterFence": "Unfenced"}})


def test_synchronous_failover_waits_for_the_peer_to_be_fenced(drpair: DRPair) -> None:
    for c in drpair.clusters.values():
        harness.configure_cluster(c, drpair.env.s3, scheduling_interval="")
    drpair.protect(preferred="east", sync=True)
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary")
    drpair.wait(lambda: drpair.secondary_settled("west", 1), "west Secondary")
    west = drpair.clusters["west"]
    harness.set_action(west, drpair.namespace, "Failover", "west")
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "Ready").get("reason") == "WaitingForFence",
                "west waits for east to be fenced")
    assert (drpair.vrg("west") or {})["spec"]["replicationState"] == "secondary"
    west.custom.patch_cluster_custom_object(G, V, "drclusters", "east", {"spec": {"clusterFence": "Fenced"}})
    try:
        drpair.wait(lambda: bool(west.custom.get_cluster_custom_object("csiaddons.openshift.io", "v1alpha1",
                                                                       "networkfences", "network-fence-east")),
                    "west creates the NetworkFence against east")
        west.custom.patch_cluster_custom_object_status("csiaddons.openshift.io", "v1alpha1", "networkfences",
                                                       "network-fence-east",
                                                       {"status": {"result": "Succeeded", "message": FENCED_MESSAGE}})
        drpair.wait(lambda: drpair.primary_ready("west", 2), "west fails over once east is fenced")
    finally:
        west.custom.patch_cluster_custom_object(G, V, "drclusters", "east", {"spec": {"clusterFence": "Unfenced"}})
        for c in drpair.clusters.values():
            harness.configure_cluster(c, drpair.env.s3)


def test_storage_classes_published_by_one_cluster_appear_in_the_peer_drcluster(drpair: DRPair) -> None:
    east, west = drpair.clusters["east"], drpair.clusters["west"]
    name = f"rbd-{secrets.token_hex(3)}"
    storage = client.StorageV1Api(east.api)
    storage.create_storage_class(client.V1StorageClass(
        metadata=client.V1ObjectMeta(name=name, labels={"ramendr.openshift.io/storageid": "ceph-east"}),
        provisioner="rbd.csi.ceph.com"))
    try:
        drpair.protect(preferred="east")  # a DRControl makes both operators use the coordination store

        def published() -> bool:
            classes = (_drcluster(west, "east").get("status") or {}).get("peerStorageClasses") or []
            return any(c.get("name") == name for c in classes)

        drpair.wait(published, "west's DRCluster east lists east's new storage class")
        entry = next(c for c in _drcluster(west, "east")["status"]["peerStorageClasses"] if c["name"] == name)
        assert entry == {"name": name, "provisioner": "rbd.csi.ceph.com", "storageID": "ceph-east"}
    finally:
        storage.delete_storage_class(name)


def _service_account_token(drpair: DRPair, name: str, may_read_metrics: bool) -> tuple[str, str | None]:
    """A token of a new ServiceAccount on east; with a ClusterRole (returned) that grants get /metrics."""
    east, ns = drpair.clusters["east"], drpair.namespace
    east.core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    role = None
    if may_read_metrics:
        role = f"{ns}-{name}"
        rbac = client.RbacAuthorizationV1Api(east.api)
        rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=role), rules=[
            client.V1PolicyRule(non_resource_ur_ls=["/metrics"], verbs=["get"])]))
        rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=role),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=ns)]))
    req = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    token = east.core.create_namespaced_service_account_token(name, ns, req).status.token
    return str(token), role


def test_metrics_and_probes_answer(drpair: DRPair) -> None:
    op = drpair.operators["east"]
    op.stop()
    metrics_port, health_port = free_port(), free_port()
    op.argv += ["--metrics-bind-address", f"127.0.0.1:{metrics_port}",
                "--health-probe-bind-address", f"127.0.0.1:{health_port}"]
    op.start()
    drpair.protect(preferred="east")
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary")

    def get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode()

    assert get(health_port, "/healthz") == (200, "ok")
    drpair.wait(lambda: get(health_port, "/readyz")[0] == 200, "readyz answers 200 once synced and heartbeating")
    # /metrics answers only identities the API server lets `get /metrics`.
    assert get(metrics_port, "/metrics")[0] == 401
    reader, stranger = _service_account_token(drpair, "scraper", True), _service_account_token(drpair, "other", False)
    try:
        assert get(metrics_port, "/metrics", "not-a-token")[0] == 401
        assert get(metrics_port, "/metrics", stranger[0])[0] == 403
        code, text = get(metrics_port, "/metrics", reader[0])
    finally:
        rbac = client.RbacAuthorizationV1Api(drpair.clusters["east"].api)
        for _, role in (reader, stranger):
            if role:
                rbac.delete_cluster_role_binding(role)
                rbac.delete_cluster_role(role)
    assert code == 200
    ns = drpair.namespace
    assert 'ramen_p2p_reconcile_total{controller="drcontrol",result="success"}' in text
    assert f'ramen_p2p_is_primary{{name="app",namespace="{ns}"}} 1.0' in text
    assert f'ramen_p2p_drstate_generation{{name="app",namespace="{ns}"}} 1.0' in text
    assert 'ramen_p2p_s3_requests_total{operation="PutObject",result="ok"}' in text
    assert 'ramen_p2p_peer_heartbeat_age_seconds{peer="west"}' in text


def test_deleting_the_drcontrol_removes_the_vrg_and_its_s3_keys(drpair: DRPair) -> None:
    drpair.protect(preferred="east")
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary")
    drpair.wait(lambda: drpair.secondary_settled("west", 1), "west Secondary")
    bucket, prefix = drpair.env.s3["bucket"], f"{drpair.namespace}/app/"

    def our_keys() -> set[str]:
        out = drpair.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        # Ramen's own VRG metadata is the VRG controller's to clean up, not ours.
        return {o["Key"][len(prefix):] for o in out if not o["Key"][len(prefix):].startswith(("v1", "v1alpha1"))}

    assert {"dr-state", "cluster-status/east", "cluster-status/west"} <= our_keys()
    for c in drpair.clusters.values():
        c.custom.delete_namespaced_custom_object(G, V, drpair.namespace, "drcontrols", "app")

    def gone(cluster: str) -> bool:
        try:
            drpair.drc(cluster)
            return False
        except ApiException as e:
            return bool(e.status == 404)

    for name in ("east", "west"):
        drpair.wait(functools.partial(lambda n: gone(n) and drpair.vrg(n) is None, name),
                    f"DRControl and VRG gone on {name}")
    drpair.wait(lambda: not our_keys(), "dr-state goes with the last cluster to leave")


VALID_RAMEN_CONFIG = ("s3StoreProfiles: [{s3ProfileName: p, s3Bucket: b, s3CompatibleEndpoint: 'http://s3:1', "
                      "s3Region: r, s3SecretRef: {name: s}}]")


@pytest.mark.parametrize(("configmap", "p2p", "message"), [
    (None, None, "ramen-dr-cluster-operator-config: not found"),
    (VALID_RAMEN_CONFIG, None, "ramen-p2p-operator-config: not found"),
    ("s3StoreProfiles: [{s3ProfileName: x}]", "{}", "invalid configuration"),
    ("{not yaml", "{}", "not valid YAML"),
    (VALID_RAMEN_CONFIG, "keyPrefx: typo/", "unknown keys ['keyPrefx']"),
    (VALID_RAMEN_CONFIG + "\np2p: {keyPrefix: a/}", "{}", "move its content to ConfigMap ramen-p2p-operator-config"),
])
def test_operator_refuses_to_start_on_missing_or_invalid_config(east: Any, namespace: str, configmap: str | None,
                                                                p2p: str | None, message: str) -> None:
    for name, key, text in (("ramen-dr-cluster-operator-config", "ramen_manager_config.yaml", configmap),
                            ("ramen-p2p-operator-config", "p2p.yaml", p2p)):
        if text is not None:
            east.core.create_namespaced_config_map(namespace, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=name), data={key: text}))
    out = subprocess.run([sys.executable, "-m", "reconciler.operator", "--cluster-name", "east", "--kubeconfig",
                          str(east.kubeconfig), "--namespace", namespace], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_leaving_on_one_cluster_keeps_dr_state_until_the_other_leaves(drpair: DRPair) -> None:
    drpair.protect_on_east()
    bucket, key = drpair.env.s3["bucket"], f"{drpair.namespace}/app/dr-state"

    def dr_state_exists() -> bool:
        return bool(drpair.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))

    def gone(cluster: str) -> bool:
        try:
            drpair.drc(cluster)
            return False
        except ApiException as e:
            return bool(e.status == 404)

    drpair.clusters["west"].custom.delete_namespaced_custom_object(G, V, drpair.namespace, "drcontrols", "app")
    drpair.wait(lambda: gone("west"), "west's DRControl is gone")
    assert dr_state_exists(), "dr-state went while east still protects the app"
    assert drpair.primary_ready("east", 1)
    drpair.clusters["east"].custom.delete_namespaced_custom_object(G, V, drpair.namespace, "drcontrols", "app")
    drpair.wait(lambda: gone("east") and not dr_state_exists(), "dr-state goes with the last cluster to leave")
