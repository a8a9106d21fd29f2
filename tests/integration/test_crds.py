"""Our CRDs (and the test CRDs of the external kinds) against the real kube-apiservers of both clusters."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException

from e2e.crdinstall import EXTERNAL_CRDS, OUR_CRDS, install_crds, load_crds
from e2e.localenv import build
from e2e.localenv.clients import Cluster
from reconciler.api import (
    DRCLUSTER,
    DRCONTROL,
    DRPOLICY,
    NETWORKFENCE,
    VRG,
    ConditionType,
    DRCluster,
    DRControl,
    DRPolicy,
    LastAction,
    ModelError,
    NetworkFence,
    PeerStatus,
    Reason,
    Resource,
    VolumeReplicationGroup,
    set_condition,
)

pytestmark = pytest.mark.realenv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RESOURCES: dict[str, Resource] = {r.kind: r for r in (DRCONTROL, DRPOLICY, DRCLUSTER, VRG, NETWORKFENCE)}
MODELS: dict[str, Any] = {
    "DRControl": DRControl,
    "DRPolicy": DRPolicy,
    "DRCluster": DRCluster,
    "VolumeReplicationGroup": VolumeReplicationGroup,
    "NetworkFence": NetworkFence,
}
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

VRG_SAMPLE: dict[str, Any] = {
    "apiVersion": "ramendr.openshift.io/v1alpha1",
    "kind": "VolumeReplicationGroup",
    "metadata": {"name": "my-app-dr"},
    "spec": {
        "pvcSelector": {"matchLabels": {"app": "my-app"}},
        "replicationState": "primary",
        "s3Profiles": ["s3-profile-shared"],
        "async": {"schedulingInterval": "5m", "replicationClassSelector": {}, "volumeSnapshotClassSelector": {}},
        "volSync": {"disabled": True},
        "kubeObjectProtection": {"captureInterval": "5m0s"},
    },
}
NETWORKFENCE_SAMPLE: dict[str, Any] = {
    "apiVersion": "csiaddons.openshift.io/v1alpha1",
    "kind": "NetworkFence",
    "metadata": {"name": "network-fence-west"},
    "spec": {
        "driver": "rbd.csi.ceph.com",
        "fenceState": "Fenced",
        "cidrs": ["10.20.0.0/16"],
        "secret": {"name": "rook-csi-rbd-provisioner", "namespace": "rook-ceph"},
        "parameters": {"clusterID": "rook-ceph"},
    },
}


def example(name: str) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return d


def unique(prefix: str) -> str:
    return f"t-{prefix}-{secrets.token_hex(4)}"


def api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(e.body)


class Objects:
    """Create custom objects and delete every one of them at the end (clusters are shared)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.created: list[tuple[Resource, str]] = []

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        res = RESOURCES[obj["kind"]]
        obj = copy.deepcopy(obj)
        kw: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        if res.namespaced:
            obj["metadata"]["namespace"] = self.namespace
            out = self.cluster.custom.create_namespaced_custom_object(
                res.group, res.version, self.namespace, res.plural, obj, **kw
            )
        else:
            out = self.cluster.custom.create_cluster_custom_object(res.group, res.version, res.plural, obj, **kw)
        if not dry_run:
            self.created.append((res, obj["metadata"]["name"]))
        result: dict[str, Any] = out
        return result

    def patch(self, kind: str, name: str, body: Any, *, status: bool = False) -> dict[str, Any]:
        res = RESOURCES[kind]
        c = self.cluster.custom
        if res.namespaced:
            fn = c.patch_namespaced_custom_object_status if status else c.patch_namespaced_custom_object
            out = fn(res.group, res.version, self.namespace, res.plural, name, body)
        else:
            fn = c.patch_cluster_custom_object_status if status else c.patch_cluster_custom_object
            out = fn(res.group, res.version, res.plural, name, body)
        result: dict[str, Any] = out
        return result

    def cleanup(self) -> None:
        for res, name in reversed(self.created):
            try:
                if res.namespaced:
                    self.cluster.custom.delete_namespaced_custom_object(
                        res.group, res.version, self.namespace, res.plural, name
                    )
                else:
                    self.cluster.custom.delete_cluster_custom_object(res.group, res.version, res.plural, name)
            except ApiException as e:
                if e.status != 404:
                    raise


@pytest.fixture(scope="module")
def crds(clusters: dict[str, Cluster]) -> dict[str, Cluster]:
    for c in clusters.values():
        install_crds(c.api, OUR_CRDS + EXTERNAL_CRDS)
    return clusters


@pytest.fixture
def east_objects(crds: dict[str, Cluster], namespace: str) -> Iterator[Objects]:
    objs = Objects(crds["east"], namespace)
    yield objs
    objs.cleanup()


# --- installation -----------------------------------------------------------------------------


def test_crd_files_are_found() -> None:
    assert [p.name for p in OUR_CRDS] == [
        "ramendr.openshift.io_drclusters.yaml",
        "ramendr.openshift.io_drcontrols.yaml",
        "ramendr.openshift.io_drpolicies.yaml",
    ]
    assert [p.name for p in EXTERNAL_CRDS] == [
        "csiaddons.openshift.io_networkfences.yaml",
        "ramendr.openshift.io_volumereplicationgroups.yaml",
    ]


@pytest.mark.parametrize("cluster_name", ["east", "west"])
def test_every_crd_is_established_and_served(crds: dict[str, Cluster], cluster_name: str) -> None:
    cluster = crds[cluster_name]
    for doc in load_crds(OUR_CRDS + EXTERNAL_CRDS):
        live = cluster.apiext.read_custom_resource_definition(doc["metadata"]["name"])
        conds = {c.type: c.status for c in live.status.conditions}
        assert conds.get("Established") == "True", (doc["metadata"]["name"], conds)
        assert conds.get("NamesAccepted") == "True", (doc["metadata"]["name"], conds)
        assert live.spec.versions[0].subresources.status is not None
    for res in RESOURCES.values():
        # A list call only succeeds once the API server serves the resource.
        if res.namespaced:
            listed = cluster.custom.list_namespaced_custom_object(res.group, res.version, "default", res.plural)
        else:
            listed = cluster.custom.list_cluster_custom_object(res.group, res.version, res.plural)
        assert listed["kind"] == f"{res.kind}List"


def test_install_is_idempotent(crds: dict[str, Cluster]) -> None:
    east = crds["east"]
    before = east.apiext.read_custom_resource_definition("drcontrols.ramendr.openshift.io")
    install_crds(east.api, OUR_CRDS)
    after = east.apiext.read_custom_resource_definition("drcontrols.ramendr.openshift.io")
    assert after.metadata.uid == before.metadata.uid
    assert after.spec.names.short_names == ["drc"]


# --- samples ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cluster_name", ["east", "west"])
def test_examples_are_accepted(crds: dict[str, Cluster], namespace: str, cluster_name: str) -> None:
    objs = Objects(crds[cluster_name], namespace)
    try:
        # The files' content under fresh names (other tests use the example names with other specs), read
        # back through the models: what the server returns must parse and round-trip.
        for name in ("drcluster-east", "drcluster-west", "drpolicy", "drpolicy-quorum", "drcontrol"):
            obj = example(name)
            obj["metadata"]["name"] = unique(name)
            created = objs.create(obj)
            model = MODELS[obj["kind"]].from_dict(created)
            assert model.to_dict() == created
            assert model.spec.to_dict() == obj["spec"]
    finally:
        objs.cleanup()


def test_external_kind_samples_are_accepted(east_objects: Objects) -> None:
    vrg = east_objects.create(VRG_SAMPLE)
    assert VolumeReplicationGroup.from_dict(vrg).to_dict() == vrg
    fence = copy.deepcopy(NETWORKFENCE_SAMPLE)
    fence["metadata"]["name"] = unique("fence")
    created = east_objects.create(fence)
    assert NetworkFence.from_dict(created).to_dict() == created
    # Status is written by the csi-addons and Ramen controllers through the status subresource.
    done = east_objects.patch(
        "NetworkFence", fence["metadata"]["name"], {"status": {"result": "Succeeded"}}, status=True
    )
    assert NetworkFence.from_dict(done).status.succeeded
    vrg_status = {"status": {"state": "Primary", "observedGeneration": 1, "finalSyncComplete": True}}
    vrg_done = east_objects.patch("VolumeReplicationGroup", "my-app-dr", vrg_status, status=True)
    assert VolumeReplicationGroup.from_dict(vrg_done).status.state == "Primary"


def test_status_written_from_model_is_stored_and_reads_back(east_objects: Objects) -> None:
    created = DRControl.from_dict(east_objects.create(example("drcontrol")))
    status = created.status
    status.observed_generation = created.metadata.generation
    status.phase = "Protecting"
    status.current_primary = "east"
    status.generation = 1
    status.peer_status = PeerStatus(
        cluster_name="west", role="secondary", vrg_healthy=True, last_seen="2026-11-25T11:59:30Z", stale=False
    )
    status.last_action = LastAction(action="Failover", target_cluster="east", spec_generation=1, result="Succeeded")
    status.conditions = set_condition(
        status.conditions,
        ConditionType.READY_FOR_APPLICATION,
        True,
        Reason.DATA_READY,
        "VRG is Primary",
        now=NOW,
        observed_generation=created.metadata.generation,
    )
    assert created.metadata.name is not None
    stored = east_objects.patch("DRControl", created.metadata.name, {"status": status.to_dict()}, status=True)
    assert DRControl.from_dict(stored).status == status


# --- invalid objects --------------------------------------------------------------------------


def mutate(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(d)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return d


DELETE = object()

# (sample, field, value, text the API server's message must contain, field path the model names or None)
INVALID_CREATES: list[tuple[str, str, Any, str, str | None]] = [
    (
        "drcontrol",
        "spec.vrgSpec.replicationType",
        "metro",
        'spec.vrgSpec.replicationType: Unsupported value: "metro"',
        "spec.vrgSpec.replicationType",
    ),
    ("drcontrol", "spec.action", "Teleport", 'spec.action: Unsupported value: "Teleport"', "spec.action"),
    (
        "drcontrol",
        "spec.action",
        "Failover",
        "spec.targetCluster is required when spec.action is set",
        "spec.targetCluster",
    ),
    ("drcontrol", "spec.drPolicyRef", DELETE, "spec.drPolicyRef: Required value", "spec.drPolicyRef"),
    ("drcontrol", "spec.vrgSpec.s3Profiles", [], "spec.vrgSpec.s3Profiles: Invalid value", "spec.vrgSpec.s3Profiles"),
    (
        "drcontrol",
        "spec.vrgSpec.s3Profiles",
        ["s3", "s3"],
        "spec.vrgSpec.s3Profiles must not contain duplicates",
        "spec.vrgSpec.s3Profiles",
    ),
    (
        "drcontrol",
        "spec.vrgSpec.pvcSelector",
        {"matchExpressions": [{"key": "app", "operator": "Is"}]},
        'spec.vrgSpec.pvcSelector.matchExpressions[0].operator: Unsupported value: "Is"',
        "spec.vrgSpec.pvcSelector.matchExpressions[0].operator",
    ),
    ("drcontrol", "spec.preferredCluster", "East", "spec.preferredCluster: Invalid value", "spec.preferredCluster"),
    ("drpolicy", "spec.drClusters", ["east"], "spec.drClusters must list exactly 2 clusters", "spec.drClusters"),
    (
        "drpolicy",
        "spec.drClusters",
        ["east", "east"],
        "spec.drClusters must name two different clusters",
        "spec.drClusters",
    ),
    (
        "drpolicy",
        "spec.schedulingInterval",
        "5 minutes",
        "spec.schedulingInterval: Invalid value",
        "spec.schedulingInterval",
    ),
    (
        "drpolicy",
        "spec.s3CoordinationProfile",
        DELETE,
        "spec.s3CoordinationProfile: Required value",
        "spec.s3CoordinationProfile",
    ),
    (
        "drpolicy",
        "spec.autoFailover",
        {"enabled": True},
        "spec.autoFailover.after is required when autoFailover is enabled",
        "spec.autoFailover.after",
    ),
    (
        "drpolicy",
        "spec.s3CoordinationQuorum",
        ["s3-profile-shared", "b", "c", "d"],
        "spec.s3CoordinationQuorum must list an odd number of S3 profiles",
        "spec.s3CoordinationQuorum",
    ),
    (
        "drpolicy",
        "spec.s3CoordinationQuorum",
        ["s3-profile-shared", "b", "b"],
        "spec.s3CoordinationQuorum must not list a profile twice",
        "spec.s3CoordinationQuorum",
    ),
    (
        "drpolicy",
        "spec.s3CoordinationQuorum",
        ["a", "b", "c"],
        "spec.s3CoordinationQuorum must include spec.s3CoordinationProfile",
        "spec.s3CoordinationQuorum",
    ),
    (
        "drcluster-east",
        "spec.clusterFence",
        "Walled",
        'spec.clusterFence: Unsupported value: "Walled"',
        "spec.clusterFence",
    ),
    ("drcluster-east", "spec.cidrs", ["10.0.0.0"], "spec.cidrs entries must be CIDRs", "spec.cidrs[0]"),
    ("drcluster-east", "spec.cidrs", [], "spec.cidrs must not be empty when spec.clusterFence is Fenced", "spec.cidrs"),
    ("drcluster-east", "spec.clusterName", "East_1", "spec.clusterName: Invalid value", "spec.clusterName"),
    (
        "drcluster-west",
        "spec.peerEndpoint.apiServer",
        "http://api.west.example.com:6443",
        "spec.peerEndpoint.apiServer must be an https URL",
        "spec.peerEndpoint.apiServer",
    ),
    (
        "vrg",
        "spec.replicationState",
        "Primary",
        'spec.replicationState: Unsupported value: "Primary"',
        "spec.replicationState",
    ),
    ("networkfence", "spec.driver", DELETE, "one of driver or networkFenceClassName must be present", "spec.driver"),
]
FLUX_SPEC = {"path": "./app", "prune": True, "interval": "10m", "sourceRef": {"kind": "Bucket", "name": "apps"}}
INVALID_CREATES += [
    ("drcontrol", "spec.application", {"fluxKustomization": {"name": "app", "namespace": "flux-system",
                                                             "spec": {**FLUX_SPEC, "prune": False}}},
     "spec.application.fluxKustomization.spec.prune must be true", "spec.application.fluxKustomization.spec.prune"),
    ("drcontrol", "spec.application", {"fluxKustomization": {"name": "app", "namespace": "flux-system",
                                                             "spec": {**FLUX_SPEC, "suspend": True}}},
     "spec.application.fluxKustomization.spec.suspend must not be true",
     "spec.application.fluxKustomization.spec.suspend"),
    ("drcontrol", "spec.application", {"fluxKustomization": {"name": "app", "namespace": "flux-system",
                                                             "spec": {"path": "./app", "prune": True}}},
     "spec.application.fluxKustomization.spec.sourceRef needs kind and name", None),
    ("drcontrol", "spec.application", {"fluxKustomization": {"name": "app", "namespace": "flux-system",
                                                             "spec": FLUX_SPEC},
                                       "argoCD": {"applicationSet": "my-app"}},
     "one tool deploys the application", None),
    ("drcontrol", "spec.application", {"argoCD": {"namespace": "argocd"}}, "applicationSet", None),
]
SAMPLES = {"vrg": VRG_SAMPLE, "networkfence": NETWORKFENCE_SAMPLE}


def sample(name: str) -> dict[str, Any]:
    if name == "drcontrol-flux":
        d = sample("drcontrol")
        d["spec"]["application"] = {"fluxKustomization": {"name": "app", "namespace": "flux-system",
                                                          "spec": copy.deepcopy(FLUX_SPEC)}}
        return d
    d = copy.deepcopy(SAMPLES[name]) if name in SAMPLES else example(name)
    d["metadata"]["name"] = unique(name)
    return d


@pytest.mark.parametrize(
    ("name", "path", "value", "message", "model_path"),
    INVALID_CREATES,
    ids=[f"{c[0]}:{c[1]}={c[2] if c[2] is not DELETE else '<deleted>'}" for c in INVALID_CREATES],
)
def test_invalid_object_is_rejected_naming_the_field(
    east_objects: Objects, name: str, path: str, value: Any, message: str, model_path: str | None
) -> None:
    obj = mutate(sample(name), path, value)
    if name == "drcluster-east" and path == "spec.cidrs":
        obj["spec"]["clusterFence"] = "Fenced"
    with pytest.raises(ApiException) as err:
        east_objects.create(obj, dry_run=True)
    assert err.value.status == 422
    assert message in api_message(err.value)
    # The typed model refuses the same object and names the same field.
    if model_path is not None:
        with pytest.raises(ModelError) as merr:
            MODELS[obj["kind"]].from_dict(obj)
        assert merr.value.path == model_path


# (sample, merge patch applied to a valid stored object, text the API server's message must contain)
INVALID_UPDATES: list[tuple[str, dict[str, Any], str]] = [
    ("drpolicy", {"spec": {"drClusters": ["east", "north"]}}, "spec.drClusters is immutable"),
    ("drpolicy", {"spec": {"schedulingInterval": "10m"}}, "spec.schedulingInterval is immutable"),
    ("drpolicy", {"spec": {"s3CoordinationProfile": "other"}}, "spec.s3CoordinationProfile is immutable"),
    ("drpolicy", {"spec": {"replicationClassSelector": None}}, "spec.replicationClassSelector is immutable"),
    ("drpolicy-quorum", {"spec": {"s3CoordinationQuorum": ["s3-profile-witness", "b", "c"]}},
     "spec.s3CoordinationQuorum is immutable once set"),
    ("drpolicy-quorum", {"spec": {"s3CoordinationQuorum": None}}, "spec.s3CoordinationQuorum cannot be removed"),
    ("drcontrol", {"spec": {"drPolicyRef": {"name": "other"}}}, "spec.drPolicyRef is immutable"),
    ("drcontrol", {"spec": {"vrgSpec": {"replicationType": "sync"}}}, "spec.vrgSpec.replicationType is immutable"),
    ("drcontrol-flux", {"spec": {"application": {"fluxKustomization": {"name": "other"}}}},
     "spec.application.fluxKustomization.name is immutable"),
    ("drcluster-east", {"spec": {"clusterName": "north"}}, "spec.clusterName is immutable"),
    ("drcluster-east", {"spec": {"region": None}}, "spec.region is immutable"),
    ("networkfence", {"spec": {"driver": "other.csi.example.com"}}, "driver is immutable"),
]


@pytest.mark.parametrize(("name", "patch", "message"), INVALID_UPDATES, ids=[f"{c[0]}:{c[2]}" for c in INVALID_UPDATES])
def test_immutable_field_change_is_rejected(
    east_objects: Objects, name: str, patch: dict[str, Any], message: str
) -> None:
    obj = sample(name)
    east_objects.create(obj)
    with pytest.raises(ApiException) as err:
        east_objects.patch(obj["kind"], obj["metadata"]["name"], patch)
    assert err.value.status == 422
    assert message in api_message(err.value)


def test_a_quorum_can_be_added_to_a_policy_on_one_store(east_objects: Objects) -> None:
    """Moving a pair from one store to three: the one change of the quorum the schema lets through."""
    obj = sample("drpolicy")
    east_objects.create(obj)
    quorum = ["s3-profile-shared", "s3-profile-east", "s3-profile-west"]
    out = east_objects.patch("DRPolicy", obj["metadata"]["name"], {"spec": {"s3CoordinationQuorum": quorum}})
    assert out["spec"]["s3CoordinationQuorum"] == quorum
    with pytest.raises(ApiException) as err:
        east_objects.patch("DRPolicy", obj["metadata"]["name"],
                           {"spec": {"s3CoordinationQuorum": ["s3-profile-east", "b", "c"]}})
    assert "must include spec.s3CoordinationProfile" in api_message(err.value)


def test_action_and_target_can_be_set_together(east_objects: Objects) -> None:
    """The CEL rule must not block the normal way to request an operation."""
    obj = sample("drcontrol")
    east_objects.create(obj)
    out = east_objects.patch(
        "DRControl", obj["metadata"]["name"], {"spec": {"action": "Relocate", "targetCluster": "west"}}
    )
    assert DRControl.from_dict(out).spec.requested_action == "Relocate"
    cleared = east_objects.patch("DRControl", obj["metadata"]["name"], {"spec": {"action": ""}})
    assert DRControl.from_dict(cleared).spec.requested_action == ""


# --- kubectl ----------------------------------------------------------------------------------


def test_kubectl_get_drcontrol_shows_printer_columns(east_objects: Objects) -> None:
    created = DRControl.from_dict(east_objects.create(example("drcontrol")))
    status = created.status
    status.phase = "Protecting"
    status.current_primary = "east"
    status.peer_status = PeerStatus(cluster_name="west")
    status.conditions = set_condition([], ConditionType.READY_FOR_APPLICATION, True, Reason.DATA_READY, "", now=NOW)
    assert created.metadata.name is not None
    east_objects.patch("DRControl", created.metadata.name, {"status": status.to_dict()}, status=True)

    kubectl = str(build.binaries().kubectl)
    for resource in ("drcontrol", "drc"):
        out = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(east_objects.cluster.kubeconfig),
                "get",
                resource,
                "-n",
                east_objects.namespace,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
        assert out[0].split() == ["NAME", "PHASE", "PRIMARY", "READYFORAPP", "PEER", "AGE"]
        assert out[1].split()[:5] == ["my-app-dr", "Protecting", "east", "True", "west"]
    wide = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(east_objects.cluster.kubeconfig),
            "get",
            "drc",
            "-o",
            "wide",
            "-n",
            east_objects.namespace,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.splitlines()
    assert wide[0].split() == ["NAME", "PHASE", "PRIMARY", "READYFORAPP", "PEER", "ACTION", "TARGET", "AGE"]
