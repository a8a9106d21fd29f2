"""DRControl: one protected application, reconciled on both clusters (CRD crds/ramendr.openshift.io_drcontrols.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.api.common import (
    GROUP,
    VERSION,
    Fields,
    LabelSelector,
    ModelError,
    ObjectMeta,
    Resource,
    emit,
    emit_object,
    parse_object,
    time_field,
)
from reconciler.api.conditions import Condition, emit_conditions, parse_conditions

DRCONTROL: Final = Resource(GROUP, VERSION, "drcontrols", "DRControl", namespaced=True)

# spec.action
ACTION_NONE: Final = ""
ACTION_FAILOVER: Final = "Failover"
ACTION_RELOCATE: Final = "Relocate"
ACTIONS: Final = (ACTION_NONE, ACTION_FAILOVER, ACTION_RELOCATE)

# spec.vrgSpec.replicationType
REPLICATION_ASYNC: Final = "async"
REPLICATION_SYNC: Final = "sync"
REPLICATION_TYPES: Final = (REPLICATION_ASYNC, REPLICATION_SYNC)

# status.phase (not an enum in the CRD, so new phases need no CRD change)
PHASE_INITIALIZING: Final = "Initializing"
PHASE_PROTECTING: Final = "Protecting"
PHASE_FAILING_OVER: Final = "FailingOver"
PHASE_RELOCATING: Final = "Relocating"
PHASE_IDLE: Final = "Idle"

# status.peerStatus.role, as the peer reports it in its cluster-status object
ROLE_PRIMARY: Final = "primary"
ROLE_SECONDARY: Final = "secondary"
ROLE_SECONDARY_READY: Final = "secondary-ready"
ROLE_UNKNOWN: Final = "unknown"

# status.lastAction.result
RESULT_IN_PROGRESS: Final = "InProgress"
RESULT_SUCCEEDED: Final = "Succeeded"
RESULT_FAILED: Final = "Failed"

CLUSTER_NAME_PATTERN: Final = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)?"
DNS_SUBDOMAIN_PATTERN: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


@dataclass
class DRPolicyRef:
    name: str

    @classmethod
    def from_dict(cls, d: Any, path: str) -> DRPolicyRef:
        return cls(name=Fields(d, path).req_string("name"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass
class VRGTemplate:
    """spec.vrgSpec: what the local VolumeReplicationGroup is built from."""

    replication_type: str
    pvc_selector: LabelSelector
    s3_profiles: list[str]
    # Passed through to the VRG untouched; their schema belongs to Ramen.
    kube_object_protection: dict[str, Any] | None = None
    vol_sync: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> VRGTemplate:
        f = Fields(d, path)
        profiles = f.string_list("s3Profiles", required=True)
        assert profiles is not None
        if not profiles:
            raise ModelError(f.at("s3Profiles"), "must list at least one S3 profile")
        if len(set(profiles)) != len(profiles):
            raise ModelError(f.at("s3Profiles"), "must not contain duplicates")
        return cls(
            replication_type=f.req_string("replicationType", choices=REPLICATION_TYPES),
            pvc_selector=f.req_nested("pvcSelector", LabelSelector.from_dict),
            s3_profiles=profiles,
            kube_object_protection=f.raw_object("kubeObjectProtection"),
            vol_sync=f.raw_object("volSync"),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            replicationType=self.replication_type,
            pvcSelector=self.pvc_selector.to_dict(),
            s3Profiles=list(self.s3_profiles),
            kubeObjectProtection=self.kube_object_protection,
            volSync=self.vol_sync,
        )


@dataclass
class FluxKustomizationTemplate:
    """spec.application.fluxKustomization: the Flux Kustomization the operator owns on each cluster.

    It exists only while the cluster is ReadyForApplication; deleting it makes Flux prune the
    application, so `spec.prune` must be true.
    """

    name: str
    namespace: str
    spec: dict[str, Any]
    labels: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> FluxKustomizationTemplate:
        f = Fields(d, path)
        spec = f.raw_object("spec")
        if spec is None:
            raise ModelError(f.at("spec"), "is required")
        if spec.get("prune") is not True:
            raise ModelError(f.at("spec") + ".prune", "must be true: the application leaves a cluster by Flux "
                                                      "pruning it when the Kustomization is deleted")
        if spec.get("suspend") is True:
            raise ModelError(f.at("spec") + ".suspend", "must not be true: a suspended Kustomization never prunes")
        return cls(
            name=f.req_string("name", pattern=DNS_SUBDOMAIN_PATTERN),
            namespace=f.req_string("namespace", pattern=CLUSTER_NAME_PATTERN),
            spec=spec,
            labels=f.raw_object("labels"),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit({}, name=self.name, namespace=self.namespace, labels=self.labels, spec=self.spec)


@dataclass
class ArgoCDApplicationSetRef:
    """spec.application.argoCD: an Argo CD ApplicationSet (with the ramen-p2p plugin) deploys the application.

    A relocate and an old Primary's demotion wait until the plugin acknowledges that Argo CD's
    Application for this cluster is gone (annotation `ramendr.openshift.io/application-stopped`).
    """

    application_set: str
    namespace: str = "argocd"

    @classmethod
    def from_dict(cls, d: Any, path: str) -> ArgoCDApplicationSetRef:
        f = Fields(d, path)
        return cls(application_set=f.req_string("applicationSet", pattern=DNS_SUBDOMAIN_PATTERN),
                   namespace=f.string("namespace", pattern=CLUSTER_NAME_PATTERN) or "argocd")

    def to_dict(self) -> dict[str, Any]:
        return emit({}, applicationSet=self.application_set, namespace=self.namespace)


@dataclass
class ApplicationRef:
    """spec.application: how the application is started and stopped on each cluster (one tool at most)."""

    flux_kustomization: FluxKustomizationTemplate | None = None
    argo_cd: ArgoCDApplicationSetRef | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> ApplicationRef:
        f = Fields(d, path)
        ref = cls(flux_kustomization=f.nested("fluxKustomization", FluxKustomizationTemplate.from_dict),
                  argo_cd=f.nested("argoCD", ArgoCDApplicationSetRef.from_dict))
        if ref.flux_kustomization is not None and ref.argo_cd is not None:
            raise ModelError(path, "names both fluxKustomization and argoCD: one tool deploys the application")
        return ref

    def to_dict(self) -> dict[str, Any]:
        return emit({}, fluxKustomization=self.flux_kustomization.to_dict() if self.flux_kustomization else None,
                    argoCD=self.argo_cd.to_dict() if self.argo_cd else None)


@dataclass
class DRControlSpec:
    dr_policy_ref: DRPolicyRef
    vrg_spec: VRGTemplate
    preferred_cluster: str | None = None
    action: str | None = None
    target_cluster: str | None = None
    application: ApplicationRef | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requested_action(self) -> str:
        """The action, with unset and "" both meaning no action."""
        return self.action or ACTION_NONE

    @classmethod
    def from_dict(cls, d: Any, path: str) -> DRControlSpec:
        f = Fields(d, path)
        spec = cls(
            dr_policy_ref=f.req_nested("drPolicyRef", DRPolicyRef.from_dict),
            vrg_spec=f.req_nested("vrgSpec", VRGTemplate.from_dict),
            preferred_cluster=f.string("preferredCluster", pattern=CLUSTER_NAME_PATTERN),
            action=f.string("action", choices=ACTIONS),
            target_cluster=f.string("targetCluster", pattern=CLUSTER_NAME_PATTERN),
            application=f.nested("application", ApplicationRef.from_dict),
            extra=f.extra(),
        )
        # Same rule as the CRD's CEL validation, so objects built in code fail the same way.
        if spec.requested_action and not spec.target_cluster:
            raise ModelError(f.at("targetCluster"), "is required when spec.action is set")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            drPolicyRef=self.dr_policy_ref.to_dict(),
            preferredCluster=self.preferred_cluster,
            vrgSpec=self.vrg_spec.to_dict(),
            action=self.action,
            targetCluster=self.target_cluster,
            application=self.application.to_dict() if self.application else None,
        )


@dataclass
class PeerStatus:
    """The peer as last read from S3."""

    cluster_name: str | None = None
    role: str | None = None
    vrg_healthy: bool | None = None
    last_seen: str | None = None
    stale: bool | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> PeerStatus:
        f = Fields(d, path)
        return cls(
            cluster_name=f.string("clusterName"),
            role=f.string("role"),
            vrg_healthy=f.boolean("vrgHealthy"),
            last_seen=time_field(f, "lastSeen"),
            stale=f.boolean("stale"),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            {},
            clusterName=self.cluster_name,
            role=self.role,
            vrgHealthy=self.vrg_healthy,
            lastSeen=self.last_seen,
            stale=self.stale,
        )


@dataclass
class LastAction:
    """The most recent action this cluster handled; specGeneration stops it being re-issued."""

    action: str | None = None
    target_cluster: str | None = None
    spec_generation: int | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None
    result: str | None = None
    message: str | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> LastAction:
        f = Fields(d, path)
        return cls(
            action=f.string("action"),
            target_cluster=f.string("targetCluster"),
            spec_generation=f.integer("specGeneration"),
            started_at=time_field(f, "startedAt"),
            completed_at=time_field(f, "completedAt"),
            duration_seconds=f.number("durationSeconds", minimum=0),
            result=f.string("result"),
            message=f.string("message"),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            {},
            action=self.action,
            targetCluster=self.target_cluster,
            specGeneration=self.spec_generation,
            startedAt=self.started_at,
            completedAt=self.completed_at,
            durationSeconds=self.duration_seconds,
            result=self.result,
            message=self.message,
        )


@dataclass
class DRControlStatus:
    observed_generation: int | None = None
    phase: str | None = None
    current_primary: str | None = None
    generation: int | None = None  # of dr-state: the highest this cluster has seen
    handled_action: dict[str, Any] | None = None  # the finished spec action (action, targetCluster)
    peer_status: PeerStatus | None = None
    last_action: LastAction | None = None
    conditions: list[Condition] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> DRControlStatus:
        f = Fields(d, path)
        return cls(
            observed_generation=f.integer("observedGeneration", minimum=0),
            phase=f.string("phase"),
            current_primary=f.string("currentPrimary"),
            generation=f.integer("generation", minimum=0),
            handled_action=f.raw_object("handledAction"),
            peer_status=f.nested("peerStatus", PeerStatus.from_dict),
            last_action=f.nested("lastAction", LastAction.from_dict),
            conditions=parse_conditions(f),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            observedGeneration=self.observed_generation,
            phase=self.phase,
            currentPrimary=self.current_primary,
            generation=self.generation,
            handledAction=self.handled_action,
            peerStatus=None if self.peer_status is None else self.peer_status.to_dict(),
            lastAction=None if self.last_action is None else self.last_action.to_dict(),
            conditions=emit_conditions(self.conditions),
        )


@dataclass
class DRControl:
    metadata: ObjectMeta
    spec: DRControlSpec
    status: DRControlStatus = field(default_factory=DRControlStatus)

    @classmethod
    def from_dict(cls, d: Any) -> DRControl:
        return cls(*parse_object(d, DRCONTROL, DRControlSpec.from_dict, DRControlStatus.from_dict, DRControlStatus))

    def to_dict(self) -> dict[str, Any]:
        return emit_object(DRCONTROL, self.metadata, self.spec, self.status)
