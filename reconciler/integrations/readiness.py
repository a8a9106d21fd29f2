"""Where may an application run? The pure decision behind the ApplicationSet plugin generator.

Each cluster's DRControl says whether the application may run there (its ReadyForApplication
condition). The generator reads the DRControl of the same name on every cluster and answers with
the clusters where it is True. Two rules keep that answer safe when the clusters disagree or one of
them cannot be read:

* At most one cluster is named. A partitioned old Primary keeps its last status (roles freeze
  while S3 is unreachable), so after a failover both clusters can report True for a while; the
  one at the higher dr-state generation (`status.generation`) is the real Primary.
* An unreadable cluster only matters when no readable cluster is ready: then the unreadable one
  might be the Primary, and answering "nowhere" would make Argo CD delete a running application.
  The decision is "unknown" and the caller reports an error, so Argo CD keeps what it has. When a
  readable cluster is ready (the usual failover case: the old Primary is down), it is named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

READY_FOR_APPLICATION = "ReadyForApplication"


@dataclass(frozen=True)
class ClusterView:
    """One cluster's DRControl as read from its API server.

    `obj` is None when the DRControl does not exist there; `error` is set when the cluster could
    not be read at all.
    """

    cluster: str
    obj: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ReadyCluster:
    cluster: str
    generation: int
    current_primary: str
    observed_generation: int
    reason: str
    message: str

    def parameters(self, namespace: str, name: str) -> dict[str, Any]:
        """One Argo CD parameter set; keys are flat so both template syntaxes can use them."""
        return {
            "cluster": self.cluster,
            "namespace": namespace,
            "drcontrol": name,
            "currentPrimary": self.current_primary,
            "generation": self.generation,
            "observedGeneration": self.observed_generation,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Decision:
    """Either `ready` (possibly empty) or, when the answer cannot be known, `problem`."""

    ready: list[ReadyCluster] = field(default_factory=list)
    problem: str | None = None
    not_found: bool = False
    # Clusters that could not be read but did not change the answer (reported, not fatal).
    unreadable: list[str] = field(default_factory=list)


def condition(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    status = obj.get("status")
    if not isinstance(status, Mapping):
        return None
    conds = status.get("conditions")
    if not isinstance(conds, Sequence):
        return None
    for c in conds:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return None


def _int(value: Any) -> int:
    # bool is an int in Python; a status field that is a bool is malformed, not 0/1.
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def ready_cluster(view: ClusterView) -> ReadyCluster | None:
    """The cluster's readiness if its DRControl says ReadyForApplication=True, else None."""
    if view.obj is None:
        return None
    c = condition(view.obj, READY_FOR_APPLICATION)
    if c is None or c.get("status") != "True":
        return None
    status = view.obj.get("status")
    st: Mapping[str, Any] = status if isinstance(status, Mapping) else {}
    return ReadyCluster(
        cluster=view.cluster,
        generation=_int(st.get("generation")),
        current_primary=str(st.get("currentPrimary") or ""),
        observed_generation=_int(st.get("observedGeneration")),
        reason=str(c.get("reason") or ""),
        message=str(c.get("message") or ""),
    )


def decide(views: Sequence[ClusterView]) -> Decision:
    unreadable = [v for v in views if v.error is not None]
    readable = [v for v in views if v.error is None]
    ready = [r for r in (ready_cluster(v) for v in readable) if r is not None]
    if not ready:
        if unreadable:
            why = "; ".join(f"{v.cluster}: {v.error}" for v in unreadable)
            return Decision(problem=f"no readable cluster is ready and some could not be read ({why}); "
                                    "the application may be running on one of those")
        if all(v.obj is None for v in readable):
            return Decision(not_found=True)
        return Decision()
    top = max(r.generation for r in ready)
    best = [r for r in ready if r.generation == top]
    if len(best) > 1:
        names = ", ".join(r.cluster for r in best)
        return Decision(problem=f"clusters {names} all report {READY_FOR_APPLICATION}=True at dr-state "
                                f"generation {top}; refusing to choose")
    return Decision(ready=best, unreadable=[v.cluster for v in unreadable])
