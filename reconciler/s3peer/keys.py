"""The S3 key schema (seed section 3.2, protocol.md "Keys") under an optional prefix."""

from __future__ import annotations

from dataclasses import dataclass, field

VRG_TYPE = "v1alpha1.VolumeReplicationGroup"
PV_TYPE = "v1.PersistentVolume"
PVC_TYPE = "v1.PersistentVolumeClaim"


def _segment(value: str, what: str) -> str:
    # Kubernetes names never contain '/', so a slash here would let one app's
    # keys alias another's: refuse instead of escaping.
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid {what} for an S3 key segment: {value!r}")
    return value


def normalize_prefix(prefix: str) -> str:
    """'' stays ''; anything else ends with exactly one '/' and has no leading '/'."""
    p = prefix.strip("/")
    return f"{p}/" if p else ""


@dataclass(frozen=True)
class AppKey:
    """One protected application: the VRG namespace and name (== DRControl name)."""

    namespace: str
    name: str
    # Computed once: an AppKey keys every per-app table, and a poll at 5,000 apps hashed it 25,000 times.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        _segment(self.namespace, "namespace")
        _segment(self.name, "name")
        object.__setattr__(self, "_hash", hash((self.namespace, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> AppKey:
        ns, sep, name = text.partition("/")
        if not sep:
            raise ValueError(f"not an app key (want ns/name): {text!r}")
        return cls(ns, name)


@dataclass(frozen=True)
class KeySchema:
    """Builds every key we read or write, all under `prefix`."""

    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", normalize_prefix(self.prefix))

    def app_prefix(self, app: AppKey) -> str:
        return f"{self.prefix}{app.namespace}/{app.name}/"

    # -- coordination objects (ours) ----------------------------------------
    def dr_state(self, app: AppKey) -> str:
        return f"{self.app_prefix(app)}dr-state"

    def dr_state_acceptor(self, app: AppKey) -> str:
        """One acceptor of the quorum dr-state (reconciler/s3peer/quorum.py), in each store."""
        return f"{self.app_prefix(app)}dr-state-acceptor"

    def dr_intent(self, app: AppKey, cluster: str) -> str:
        return f"{self.app_prefix(app)}dr-intent/{_segment(cluster, 'cluster')}"

    def cluster_status(self, app: AppKey, cluster: str) -> str:
        return f"{self.app_prefix(app)}cluster-status/{_segment(cluster, 'cluster')}"

    def cluster_info(self, cluster: str) -> str:
        return f"{self.prefix}cluster-info/{_segment(cluster, 'cluster')}/"

    def storage_classes(self, cluster: str) -> str:
        return f"{self.cluster_info(cluster)}storage-classes"

    def health(self, cluster: str) -> str:
        return f"{self.cluster_info(cluster)}health"

    def digest(self, cluster: str) -> str:
        return f"{self.cluster_info(cluster)}digest"

    # -- Ramen VRG controller metadata (read-only for us) -------------------
    def vrg_metadata(self, app: AppKey) -> str:
        return f"{self.app_prefix(app)}{VRG_TYPE}/a"

    def pv_metadata(self, app: AppKey, pv: str) -> str:
        return f"{self.app_prefix(app)}{PV_TYPE}/{_segment(pv, 'PV name')}"

    def pvc_metadata(self, app: AppKey, pvc_namespace: str, pvc: str) -> str:
        return f"{self.app_prefix(app)}{PVC_TYPE}/{_segment(pvc_namespace, 'PVC namespace')}/{_segment(pvc, 'PVC')}"

    def pv_prefix(self, app: AppKey) -> str:
        return f"{self.app_prefix(app)}{PV_TYPE}/"

    def pvc_prefix(self, app: AppKey) -> str:
        return f"{self.app_prefix(app)}{PVC_TYPE}/"

    def own_app_keys(self, app: AppKey, cluster: str) -> list[str]:
        """The per-app objects a cluster writes besides dr-state."""
        return [self.dr_intent(app, cluster), self.cluster_status(app, cluster)]
