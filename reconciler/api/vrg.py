"""Ramen's VolumeReplicationGroup, the part we drive (upstream api/v1alpha1/volumereplicationgroup_types.go).

We write the spec and read the status; Ramen's VRG controller owns everything else. Unknown fields
are kept (`extra`), so a spec written back from this model never drops what a newer Ramen added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.api.common import (
    GROUP,
    VERSION,
    Fields,
    LabelSelector,
    ObjectMeta,
    Resource,
    emit,
    emit_object,
    parse_object,
    time_field,
)
from reconciler.api.conditions import Condition, emit_conditions, parse_conditions

VRG: Final = Resource(GROUP, VERSION, "volumereplicationgroups", "VolumeReplicationGroup", namespaced=True)

# spec.replicationState
REPLICATION_PRIMARY: Final = "primary"
REPLICATION_SECONDARY: Final = "secondary"
REPLICATION_STATES: Final = (REPLICATION_PRIMARY, REPLICATION_SECONDARY)

# status.state
STATE_PRIMARY: Final = "Primary"
STATE_SECONDARY: Final = "Secondary"
STATE_UNKNOWN: Final = "Unknown"
STATES: Final = (STATE_PRIMARY, STATE_SECONDARY, STATE_UNKNOWN)

# spec.action
VRG_ACTION_FAILOVER: Final = "Failover"
VRG_ACTION_RELOCATE: Final = "Relocate"
VRG_ACTIONS: Final = (VRG_ACTION_FAILOVER, VRG_ACTION_RELOCATE)


class VRGConditionType:
    """Condition types Ramen's VRG controller reports (internal/controller/status.go upstream)."""

    DATA_READY: Final = "DataReady"
    DATA_PROTECTED: Final = "DataProtected"
    CLUSTER_DATA_READY: Final = "ClusterDataReady"
    CLUSTER_DATA_PROTECTED: Final = "ClusterDataProtected"
    KUBE_OBJECTS_READY: Final = "KubeObjectsReady"
    NO_CLUSTER_DATA_CONFLICT: Final = "NoClusterDataConflict"


@dataclass
class VRGAsyncSpec:
    scheduling_interval: str
    replication_class_selector: LabelSelector | None = None
    volume_snapshot_class_selector: LabelSelector | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> VRGAsyncSpec:
        f = Fields(d, path)
        return cls(
            scheduling_interval=f.req_string("schedulingInterval", pattern=r"\d+[mhd]"),
            replication_class_selector=f.nested("replicationClassSelector", LabelSelector.from_dict),
            volume_snapshot_class_selector=f.nested("volumeSnapshotClassSelector", LabelSelector.from_dict),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        rcs = self.replication_class_selector
        vscs = self.volume_snapshot_class_selector
        return emit(
            self.extra,
            schedulingInterval=self.scheduling_interval,
            replicationClassSelector=None if rcs is None else rcs.to_dict(),
            volumeSnapshotClassSelector=None if vscs is None else vscs.to_dict(),
        )


@dataclass
class VRGSpec:
    replication_state: str
    pvc_selector: LabelSelector
    s3_profiles: list[str]
    async_: VRGAsyncSpec | None = None  # JSON "async"; a Python keyword
    sync: dict[str, Any] | None = None
    vol_sync: dict[str, Any] | None = None
    action: str | None = None
    prepare_for_final_sync: bool | None = None
    run_final_sync: bool | None = None
    kube_object_protection: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> VRGSpec:
        f = Fields(d, path)
        profiles = f.string_list("s3Profiles", required=True)
        assert profiles is not None
        return cls(
            replication_state=f.req_string("replicationState", choices=REPLICATION_STATES),
            pvc_selector=f.req_nested("pvcSelector", LabelSelector.from_dict),
            s3_profiles=profiles,
            async_=f.nested("async", VRGAsyncSpec.from_dict),
            sync=f.raw_object("sync"),
            vol_sync=f.raw_object("volSync"),
            action=f.string("action", choices=VRG_ACTIONS),
            prepare_for_final_sync=f.boolean("prepareForFinalSync"),
            run_final_sync=f.boolean("runFinalSync"),
            kube_object_protection=f.raw_object("kubeObjectProtection"),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "pvcSelector": self.pvc_selector.to_dict(),
            "replicationState": self.replication_state,
            "s3Profiles": list(self.s3_profiles),
            "async": None if self.async_ is None else self.async_.to_dict(),
            "sync": self.sync,
            "volSync": self.vol_sync,
            "action": self.action,
            "prepareForFinalSync": self.prepare_for_final_sync,
            "runFinalSync": self.run_final_sync,
            "kubeObjectProtection": self.kube_object_protection,
        }
        return emit(self.extra, **fields)


@dataclass
class VRGStatus:
    state: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = field(default_factory=list)
    last_group_sync_time: str | None = None
    prepare_for_final_sync_complete: bool | None = None
    final_sync_complete: bool | None = None
    protected_pvcs: list[dict[str, Any]] | None = None  # Ramen's ProtectedPVC, read-only for us
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> VRGStatus:
        f = Fields(d, path)
        return cls(
            state=f.string("state", choices=STATES),
            observed_generation=f.integer("observedGeneration", minimum=0),
            conditions=parse_conditions(f),
            last_group_sync_time=time_field(f, "lastGroupSyncTime"),
            prepare_for_final_sync_complete=f.boolean("prepareForFinalSyncComplete"),
            final_sync_complete=f.boolean("finalSyncComplete"),
            protected_pvcs=f.items("protectedPVCs", lambda v, p: Fields(v, p).extra()),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            state=self.state,
            observedGeneration=self.observed_generation,
            conditions=emit_conditions(self.conditions),
            lastGroupSyncTime=self.last_group_sync_time,
            prepareForFinalSyncComplete=self.prepare_for_final_sync_complete,
            finalSyncComplete=self.final_sync_complete,
            protectedPVCs=self.protected_pvcs,
        )


@dataclass
class VolumeReplicationGroup:
    metadata: ObjectMeta
    spec: VRGSpec
    status: VRGStatus = field(default_factory=VRGStatus)

    @classmethod
    def from_dict(cls, d: Any) -> VolumeReplicationGroup:
        return cls(*parse_object(d, VRG, VRGSpec.from_dict, VRGStatus.from_dict, VRGStatus))

    def to_dict(self) -> dict[str, Any]:
        return emit_object(VRG, self.metadata, self.spec, self.status)
