"""What the operator publishes about its storage classes for the peer's DRCluster status."""

from __future__ import annotations

from reconciler.manager import _class_summary


def test_each_class_kind_names_its_provisioner_where_that_kind_keeps_it() -> None:
    sc = {"kind": "StorageClass", "metadata": {"name": "rbd"}, "provisioner": "rbd.csi.ceph.com"}
    vsc = {"kind": "VolumeSnapshotClass", "metadata": {"name": "snap"}, "driver": "rbd.csi.ceph.com"}
    vrc = {"kind": "VolumeReplicationClass", "metadata": {"name": "vrc", "labels": {
        "ramendr.openshift.io/replicationid": "east-west"}}, "spec": {"provisioner": "rbd.csi.ceph.com"}}
    assert [_class_summary(o)["provisioner"] for o in (sc, vsc, vrc)] == ["rbd.csi.ceph.com"] * 3
    assert _class_summary(vrc)["replicationID"] == "east-west"
