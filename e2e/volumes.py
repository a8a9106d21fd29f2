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
VOLSYNC_DRIVER = "volsync-double.ramen-p2p.test"  # no VolumeReplicationClass names it: VolSync's PVCs
VOLSYNC_STORAGE_CLASS = "volsync-double"


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


def install_volsync_classes(c: Cluster) -> None:
    """A StorageClass no VolumeReplicationClass matches (Ramen protects its PVCs with VolSync) and the
    VolumeSnapshotClass of its driver, which Ramen's ReplicationSources and Destinations name."""
    _create(client.StorageV1Api(c.api).create_storage_class, client.V1StorageClass(
        metadata=client.V1ObjectMeta(name=VOLSYNC_STORAGE_CLASS), provisioner=VOLSYNC_DRIVER,
        reclaim_policy="Delete", volume_binding_mode="Immediate"))
    _create(c.custom.create_cluster_custom_object, "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", {
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": f"{VOLSYNC_STORAGE_CLASS}-snapshots"}, "driver": VOLSYNC_DRIVER,
        "deletionPolicy": "Delete"})


def static_pv(c: Cluster, namespace: str, name: str, size: str = "1Gi", storage_class: str = STORAGE_CLASS) -> str:
    """A PV pre-bound to the PVC `name` (which may not exist yet); returns the PV's name."""
    pv = f"pv-{namespace}-{name}"[:63]
    driver = VOLSYNC_DRIVER if storage_class == VOLSYNC_STORAGE_CLASS else DRIVER
    c.core.create_persistent_volume(client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=pv),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": size}, access_modes=["ReadWriteOnce"], storage_class_name=storage_class,
            # Delete, as a provisioned volume's: Ramen switches it to Retain while it protects the PVC.
            persistent_volume_reclaim_policy="Delete",
            claim_ref=client.V1ObjectReference(namespace=namespace, name=name),
            csi=client.V1CSIPersistentVolumeSource(driver=driver, volume_handle=pv))))
    return pv


def static_pvc(c: Cluster, namespace: str, name: str, labels: dict[str, str], size: str = "1Gi",
               storage_class: str = STORAGE_CLASS) -> str:
    """A PV pre-bound to a new PVC `name`; returns the PV's name (unique per namespace and claim)."""
    pv = static_pv(c, namespace, name, size, storage_class)
    c.core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], storage_class_name=storage_class, volume_name=pv,
            resources=client.V1VolumeResourceRequirements(requests={"storage": size}))))
    return pv


def app_pod(c: Cluster, namespace: str, name: str, pvc: str) -> None:
    """The application's Pod mounting `pvc`. No kubelet runs it; Ramen sees the PVC in use, as it would."""
    c.core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="app", image="registry.invalid/app:1",
            volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")])],
            volumes=[client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                claim_name=pvc))])))


def pvc_phase(c: Cluster, namespace: str, name: str) -> str:
    try:
        return str(c.core.read_namespaced_persistent_volume_claim(name, namespace).status.phase or "")
    except ApiException as e:
        if e.status == 404:
            return ""
        raise
