"""DRCluster: one peer cluster as configured locally (CRD crds/ramendr.openshift.io_drclusters.yaml)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.api.common import (
    GROUP,
    VERSION,
    Fields,
    ModelError,
    ObjectMeta,
    Resource,
    emit,
    emit_object,
    join,
    parse_object,
)
from reconciler.api.conditions import Condition, emit_conditions, parse_conditions

DRCLUSTER: Final = Resource(GROUP, VERSION, "drclusters", "DRCluster", namespaced=False)

# spec.clusterFence
FENCE_UNFENCED: Final = "Unfenced"
FENCE_FENCED: Final = "Fenced"
FENCE_MANUALLY_FENCED: Final = "ManuallyFenced"
FENCE_MANUALLY_UNFENCED: Final = "ManuallyUnfenced"
CLUSTER_FENCE_STATES: Final = (FENCE_UNFENCED, FENCE_FENCED, FENCE_MANUALLY_FENCED, FENCE_MANUALLY_UNFENCED)

# status.phase (free-form in the CRD)
PHASE_AVAILABLE: Final = "Available"
PHASE_FENCING: Final = "Fencing"
PHASE_FENCED: Final = "Fenced"
PHASE_UNFENCING: Final = "Unfencing"
PHASE_UNFENCED: Final = "Unfenced"

CLUSTER_NAME_PATTERN: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


@dataclass
class SecretRef:
    name: str
    namespace: str

    @classmethod
    def from_dict(cls, d: Any, path: str) -> SecretRef:
        f = Fields(d, path)
        return cls(name=f.req_string("name"), namespace=f.req_string("namespace"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace}


@dataclass
class PeerEndpoint:
    api_server: str
    secret_ref: SecretRef

    @classmethod
    def from_dict(cls, d: Any, path: str) -> PeerEndpoint:
        f = Fields(d, path)
        api_server = f.req_string("apiServer")
        if not api_server.startswith("https://") or len(api_server) <= len("https://"):
            raise ModelError(f.at("apiServer"), "must be an https URL")
        return cls(api_server=api_server, secret_ref=f.req_nested("secretRef", SecretRef.from_dict))

    def to_dict(self) -> dict[str, Any]:
        return {"apiServer": self.api_server, "secretRef": self.secret_ref.to_dict()}


@dataclass
class PeerStorageClass:
    name: str
    provisioner: str
    storage_id: str | None = None
    replication_id: str | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> PeerStorageClass:
        f = Fields(d, path)
        return cls(
            name=f.req_string("name"),
            provisioner=f.req_string("provisioner"),
            storage_id=f.string("storageID"),
            replication_id=f.string("replicationID"),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            {},
            name=self.name,
            provisioner=self.provisioner,
            storageID=self.storage_id,
            replicationID=self.replication_id,
        )


def _check_cidr(value: str, path: str) -> None:
    try:
        if "/" not in value:
            raise ValueError(value)
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ModelError(path, f"must be a CIDR such as 10.0.0.0/16, got {value!r}") from None


@dataclass
class DRClusterSpec:
    cluster_name: str
    s3_profile_name: str
    peer_endpoint: PeerEndpoint | None = None
    cidrs: list[str] | None = None
    cluster_fence: str | None = None
    region: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fenced(self) -> bool:
        return self.cluster_fence in (FENCE_FENCED, FENCE_MANUALLY_FENCED)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> DRClusterSpec:
        f = Fields(d, path)
        cidrs = f.string_list("cidrs")
        for i, cidr in enumerate(cidrs or []):
            _check_cidr(cidr, join(f.at("cidrs"), i))
        spec = cls(
            cluster_name=f.req_string("clusterName", pattern=CLUSTER_NAME_PATTERN),
            s3_profile_name=f.req_string("s3ProfileName"),
            peer_endpoint=f.nested("peerEndpoint", PeerEndpoint.from_dict),
            cidrs=cidrs,
            cluster_fence=f.string("clusterFence", choices=CLUSTER_FENCE_STATES),
            region=f.string("region"),
            extra=f.extra(),
        )
        if spec.fenced and not spec.cidrs:
            raise ModelError(f.at("cidrs"), "must not be empty when spec.clusterFence is Fenced or ManuallyFenced")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            clusterName=self.cluster_name,
            s3ProfileName=self.s3_profile_name,
            peerEndpoint=None if self.peer_endpoint is None else self.peer_endpoint.to_dict(),
            cidrs=None if self.cidrs is None else list(self.cidrs),
            clusterFence=self.cluster_fence,
            region=self.region,
        )


@dataclass
class DRClusterStatus:
    observed_generation: int | None = None
    phase: str | None = None
    peer_storage_classes: list[PeerStorageClass] | None = None
    conditions: list[Condition] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> DRClusterStatus:
        f = Fields(d, path)
        return cls(
            observed_generation=f.integer("observedGeneration", minimum=0),
            phase=f.string("phase"),
            peer_storage_classes=f.items("peerStorageClasses", PeerStorageClass.from_dict),
            conditions=parse_conditions(f),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        classes = self.peer_storage_classes
        return emit(
            self.extra,
            observedGeneration=self.observed_generation,
            phase=self.phase,
            peerStorageClasses=None if classes is None else [c.to_dict() for c in classes],
            conditions=emit_conditions(self.conditions),
        )


@dataclass
class DRCluster:
    metadata: ObjectMeta
    spec: DRClusterSpec
    status: DRClusterStatus = field(default_factory=DRClusterStatus)

    @classmethod
    def from_dict(cls, d: Any) -> DRCluster:
        return cls(*parse_object(d, DRCLUSTER, DRClusterSpec.from_dict, DRClusterStatus.from_dict, DRClusterStatus))

    def to_dict(self) -> dict[str, Any]:
        return emit_object(DRCLUSTER, self.metadata, self.spec, self.status)
