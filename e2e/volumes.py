"""Real PVCs for Ramen's real VRG controller: a StorageClass and VolumeReplicationClass of the
csi-addons double's driver, and static PVs that kube-controller-manager binds to PVCs.

No CSI driver runs, so nothing is provisioned: each PV is created by hand, pre-bound (claimRef)
to its PVC so kube-controller-manager's binder pairs exactly these two, as an administrator's
static PV would be.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.localenv.clients import Cluster

DRIVER = "csi-double.ramen-p2p.test"  # the csi-addons double answers for this "driver"
STORAGE_CLASS = "csi-double"
REPLICATION_CLASS = "csi-double-vrc"
REPLICATION_ID_LABEL = "ramendr.openshift.io/replicationid"
REPLICATION_ID = "east-west"  # what the example DRPolicy's replicationClassSelector asks for


def _create(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ApiException as e:
        if e.status != 409:
            raise


def install_classes(c: Cluster, scheduling_interval: str) -> None:
    """The StorageClass and the VolumeReplicationClass Ramen matches by provisioner and schedule."""
    _create(client.StorageV1Api(c.api).create_storage_class, client.V1StorageClass(
        metadata=client.V1ObjectMeta(name=STORAGE_CLASS), provisioner=DRIVER, reclaim_policy="Delete",
        volume_binding_mode="Immediate"))
    _create(c.custom.create_cluster_custom_object, "replication.storage.openshift.io", "v1alpha1",
            "volumereplicationclasses", {
                "apiVersion": "replication.storage.openshift.io/v1alpha1", "kind": "VolumeReplicationClass",
                "metadata": {"name": REPLICATION_CLASS, "labels": {REPLICATION_ID_LABEL: REPLICATION_ID}},
                "spec": {"provisioner": DRIVER, "parameters": {"schedulingInterval": scheduling_interval}}})


def static_pvc(c: Cluster, namespace: str, name: str, labels: dict[str, str], size: str = "1Gi") -> str:
    """A PV pre-bound to a new PVC `name`; returns the PV's name (unique per namespace and claim)."""
    pv = f"pv-{namespace}-{name}"[:63]
    c.core.create_persistent_volume(client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=pv),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": size}, access_modes=["ReadWriteOnce"], storage_class_name=STORAGE_CLASS,
            # Delete, as a provisioned volume's: Ramen switches it to Retain while it protects the PVC.
            persistent_volume_reclaim_policy="Delete",
            claim_ref=client.V1ObjectReference(namespace=namespace, name=name),
            csi=client.V1CSIPersistentVolumeSource(driver=DRIVER, volume_handle=pv))))
    c.core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], storage_class_name=STORAGE_CLASS, volume_name=pv,
            resources=client.V1VolumeResourceRequirements(requests={"storage": size}))))
    return pv


def pvc_phase(c: Cluster, namespace: str, name: str) -> str:
    try:
        return str(c.core.read_namespaced_persistent_volume_claim(name, namespace).status.phase or "")
    except ApiException as e:
        if e.status == 404:
            return ""
        raise
