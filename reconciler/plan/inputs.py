"""What the DRControl planner sees: plain, immutable views built by the controller shell.

The coordination objects are the S3 library's own typed bodies (DRState,
DRIntent, ClusterStatus, PeerHealth).

The planner never reads a clock, a cache or S3: everything it decides on is
here, so every decision can be table-tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.plan.application import ApplicationView
from reconciler.s3peer.models import ClusterStatus, DRIntent, DRState
from reconciler.s3peer.snapshot import PeerHealth

# VRG spec.replicationState values.
PRIMARY = "primary"
SECONDARY = "secondary"


def dig(obj: Mapping[str, Any], *path: str) -> Any:
    """obj[p0][p1]...; None as soon as a step is missing or not a mapping."""
    cur: Any = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def no_peer_seen() -> PeerHealth:
    return PeerHealth(seen=False, stale=False, last_seen=None, unchanged_for=0.0, sequence=None, ready=None)


@dataclass(frozen=True)
class CoordinationError:
    """Why the S3 view is not usable this time; `reason` becomes a condition reason."""

    reason: str
    message: str
    corrupt: bool = False


@dataclass(frozen=True)
class Coordination:
    """What the coordination store said for this app, read this reconcile."""

    error: CoordinationError | None = None
    dr_state: DRState | None = None
    dr_state_etag: str | None = None
    own_status: ClusterStatus | None = None
    peer_status: ClusterStatus | None = None
    own_intent: DRIntent | None = None
    peer_intent: DRIntent | None = None
    peer_health: PeerHealth = field(default_factory=no_peer_seen)
    # dr-state was read (over a quorum) but the store of the other objects was not: why.
    advice_problem: str | None = None
    # With a quorum: how many stores hold dr-state, and those that did not answer this read (with why).
    stores: int = 1
    stores_unreachable: tuple[str, ...] = ()


@dataclass(frozen=True)
class VRGView:
    """The local VolumeReplicationGroup, as cached (absent when `live` is None)."""

    live: Mapping[str, Any] | None = None

    @property
    def exists(self) -> bool:
        return self.live is not None

    def _get(self, *path: str) -> Any:
        return dig(self.live or {}, *path)

    @property
    def generation(self) -> int:
        return int(self._get("metadata", "generation") or 0)

    @property
    def desired_state(self) -> str:
        return str(self._get("spec", "replicationState") or "")

    @property
    def state(self) -> str:
        return str(self._get("status", "state") or "")

    @property
    def observed_generation(self) -> int:
        return int(self._get("status", "observedGeneration") or 0)

    @property
    def current(self) -> bool:
        """The status describes the latest spec."""
        return self.exists and self.observed_generation == self.generation

    def condition(self, ctype: str) -> bool:
        """True when the condition is True for the VRG's current generation."""
        for c in self._get("status", "conditions") or []:
            if isinstance(c, Mapping) and c.get("type") == ctype:
                return c.get("status") == "True" and int(c.get("observedGeneration") or 0) == self.generation
        return False

    def blocked_by(self) -> str:
        """Why the VRG is not there yet, in its own words, from its False conditions for this generation.

        Ramen's VRG says it per PVC: "unable to transition to Secondary as PVC is not deleted" in a
        protected PVC's DataReady while the application still holds it; its own DataReady only says
        "progressing". Empty when nothing is False.
        """
        def false(conds: Any) -> list[Mapping[str, Any]]:
            return [c for c in conds or [] if isinstance(c, Mapping) and c.get("status") == "False"
                    and int(c.get("observedGeneration") or 0) == self.generation
                    and c.get("type") in ("DataReady", "ClusterDataReady")]

        for pvc in self._get("status", "protectedPVCs") or []:
            if isinstance(pvc, Mapping):
                for c in false(pvc.get("conditions")):
                    return f"PVC {pvc.get('name')}: {c.get('message')}"
        for c in false(self._get("status", "conditions")):
            return f"{c.get('type')} {c.get('reason')}: {c.get('message')}"
        return ""

    def spec_flag(self, name: str) -> bool:
        """A boolean of the VRG spec as it is now (e.g. the final-sync requests already made)."""
        return bool(self._get("spec", name))

    @property
    def prepare_complete(self) -> bool:
        return bool(self._get("status", "prepareForFinalSyncComplete"))

    @property
    def final_sync_complete(self) -> bool:
        return bool(self._get("status", "finalSyncComplete"))

    def reports(self, state: str) -> bool:
        """The VRG reports `state` (Primary/Secondary) for its current spec."""
        return self.current and self.state == state

    @property
    def ready_as_primary(self) -> bool:
        return (
            self.desired_state == PRIMARY
            and self.reports("Primary")
            and self.condition("DataReady")
            and self.condition("ClusterDataReady")
        )

    @property
    def ready_as_secondary(self) -> bool:
        return self.desired_state == SECONDARY and self.reports("Secondary")


@dataclass(frozen=True)
class PolicyView:
    """The DRPolicy named by the DRControl, reduced to what the planner needs."""

    name: str
    found: bool = False
    problem: str = ""  # non-empty: why the policy cannot be used
    clusters: tuple[str, ...] = ()
    scheduling_interval: str = ""
    replication_class_selector: Mapping[str, Any] = field(default_factory=dict)
    volume_snapshot_class_selector: Mapping[str, Any] = field(default_factory=dict)
    auto_failover_after: float | None = None  # seconds; None when automatic failover is off

    @property
    def synchronous(self) -> bool:
        return self.scheduling_interval == ""


@dataclass(frozen=True)
class PlanInput:
    cluster: str
    drcontrol: Mapping[str, Any]
    policy: PolicyView
    vrg: VRGView
    coordination: Coordination
    peer_fenced: bool
    now: str  # RFC 3339, for condition and action timestamps
    poll_interval: float = 30.0
    # This cluster's own heartbeat reached S3 recently (automatic failover needs it).
    local_heartbeat_ok: bool = True
    # Why the VolSync PSK cannot be derived here (no seed configured, seed unreadable); "" when it can.
    volsync_seed_problem: str = ""
    # The Kustomization spec.application.fluxKustomization names, as last read (unread by default).
    application: ApplicationView = field(default_factory=ApplicationView)
