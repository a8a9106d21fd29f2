"""DRPolicy: the two peer clusters and how they replicate (CRD crds/ramendr.openshift.io_drpolicies.yaml)."""

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
)
from reconciler.api.conditions import Condition, emit_conditions, parse_conditions

DRPOLICY: Final = Resource(GROUP, VERSION, "drpolicies", "DRPolicy", namespaced=False)

SCHEDULING_INTERVAL_PATTERN: Final = r"(|\d+[mhd])"
DURATION_PATTERN: Final = r"([0-9]+(s|m|h))+"


@dataclass
class AutoFailover:
    enabled: bool
    after: str | None = None  # Go-style duration, e.g. 5m or 1h30m

    @classmethod
    def from_dict(cls, d: Any, path: str) -> AutoFailover:
        f = Fields(d, path)
        value = cls(enabled=f.req_boolean("enabled"), after=f.string("after", pattern=DURATION_PATTERN))
        if value.enabled and value.after is None:
            raise ModelError(f.at("after"), "is required when autoFailover is enabled")
        return value

    def to_dict(self) -> dict[str, Any]:
        return emit({}, enabled=self.enabled, after=self.after)


@dataclass
class DRPolicySpec:
    dr_clusters: list[str]
    scheduling_interval: str
    s3_coordination_profile: str
    s3_coordination_quorum: list[str] | None = None
    replication_class_selector: LabelSelector | None = None
    volume_snapshot_class_selector: LabelSelector | None = None
    auto_failover: AutoFailover | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def synchronous(self) -> bool:
        """An empty scheduling interval means synchronous (Metro) replication."""
        return self.scheduling_interval == ""

    def peer_of(self, cluster: str) -> str:
        """The other cluster of the pair."""
        if cluster not in self.dr_clusters:
            raise ValueError(f"{cluster!r} is not one of the policy's clusters {self.dr_clusters}")
        return self.dr_clusters[1] if self.dr_clusters[0] == cluster else self.dr_clusters[0]

    @classmethod
    def from_dict(cls, d: Any, path: str) -> DRPolicySpec:
        f = Fields(d, path)
        clusters = f.string_list("drClusters", required=True)
        assert clusters is not None
        if len(clusters) != 2:
            raise ModelError(f.at("drClusters"), f"must list exactly 2 clusters, got {len(clusters)}")
        if clusters[0] == clusters[1]:
            raise ModelError(f.at("drClusters"), "must name two different clusters")
        if not all(clusters):
            raise ModelError(f.at("drClusters"), "must not contain empty names")
        quorum = f.string_list("s3CoordinationQuorum")
        profile = f.req_string("s3CoordinationProfile")
        if quorum is not None:
            if len(quorum) % 2 == 0 or not 3 <= len(quorum) <= 7:
                raise ModelError(f.at("s3CoordinationQuorum"),
                                 f"must list an odd number of S3 profiles from 3 to 7, got {len(quorum)}")
            if len(set(quorum)) != len(quorum):
                raise ModelError(f.at("s3CoordinationQuorum"), "must not list a profile twice")
            if profile not in quorum:
                raise ModelError(f.at("s3CoordinationQuorum"), f"must include s3CoordinationProfile {profile!r}")
        return cls(
            dr_clusters=clusters,
            scheduling_interval=f.req_string(
                "schedulingInterval", pattern=SCHEDULING_INTERVAL_PATTERN, allow_empty=True
            ),
            s3_coordination_profile=profile,
            s3_coordination_quorum=quorum,
            replication_class_selector=f.nested("replicationClassSelector", LabelSelector.from_dict),
            volume_snapshot_class_selector=f.nested("volumeSnapshotClassSelector", LabelSelector.from_dict),
            auto_failover=f.nested("autoFailover", AutoFailover.from_dict),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        rcs = self.replication_class_selector
        vscs = self.volume_snapshot_class_selector
        return emit(
            self.extra,
            drClusters=list(self.dr_clusters),
            schedulingInterval=self.scheduling_interval,
            s3CoordinationProfile=self.s3_coordination_profile,
            s3CoordinationQuorum=None if self.s3_coordination_quorum is None else list(self.s3_coordination_quorum),
            replicationClassSelector=None if rcs is None else rcs.to_dict(),
            volumeSnapshotClassSelector=None if vscs is None else vscs.to_dict(),
            autoFailover=None if self.auto_failover is None else self.auto_failover.to_dict(),
        )


@dataclass
class DRPolicyStatus:
    observed_generation: int | None = None
    conditions: list[Condition] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> DRPolicyStatus:
        f = Fields(d, path)
        return cls(
            observed_generation=f.integer("observedGeneration", minimum=0),
            conditions=parse_conditions(f),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            observedGeneration=self.observed_generation,
            conditions=emit_conditions(self.conditions),
        )


@dataclass
class DRPolicy:
    metadata: ObjectMeta
    spec: DRPolicySpec
    status: DRPolicyStatus = field(default_factory=DRPolicyStatus)

    @classmethod
    def from_dict(cls, d: Any) -> DRPolicy:
        return cls(*parse_object(d, DRPOLICY, DRPolicySpec.from_dict, DRPolicyStatus.from_dict, DRPolicyStatus))

    def to_dict(self) -> dict[str, Any]:
        return emit_object(DRPOLICY, self.metadata, self.spec, self.status)
