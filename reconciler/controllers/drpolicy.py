"""The DRPolicy controller: the two DRClusters exist, and the coordination store is fit for CAS.

Its conditions (Validated, S3Reachable) tell a person whether DR can work at
all before any application is protected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.api import DRCLUSTER, DRPOLICY
from reconciler.api.conditions import Condition, set_condition
from reconciler.controllers.peering import PeeringError, PeeringRegistry
from reconciler.kube import Applier, Cache, Result
from reconciler.s3peer import ProbeResult, S3PeerError, probe

log = logging.getLogger(__name__)


@dataclass
class DRPolicyController:
    cluster: str
    cache: Cache
    applier: Applier
    peerings: PeeringRegistry
    now: Callable[[], datetime]
    probe_ttl: float = 300.0
    _probes: dict[str, tuple[float, ProbeResult | str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _probe(self, profile: str, peer: str, quorum: tuple[str, ...] = (), index: int | None = None
               ) -> ProbeResult | str:
        """The capability probe of a profile (or of store `index` of its quorum), re-run at most every
        probe_ttl seconds; a str is a config problem."""
        cache_key = profile if index is None else f"{profile}#quorum{index}"
        with self._lock:
            hit = self._probes.get(cache_key)
            if hit is not None and time.monotonic() - hit[0] < self.probe_ttl:
                return hit[1]
        result: ProbeResult | str
        try:
            peering = self.peerings.get(profile, peer, quorum)
            store = peering.coordinator.store
            if index is not None:
                assert peering.coordinator.quorum is not None
                store = peering.coordinator.quorum.stores[index]
            result = probe(store, key_prefix=self.peerings.settings.key_prefix, latency_samples=3)
        except (PeeringError, S3PeerError) as e:
            result = str(e)
        with self._lock:
            self._probes[cache_key] = (time.monotonic(), result)
        return result

    def _quorum_conditions(self, profile: str, peer: str, quorum: tuple[str, ...],
                           cond: Callable[[str, bool, str, str], None]) -> float | None:
        """Validated and S3Reachable for dr-state over several stores: which answer, whether a majority does."""
        majority = len(quorum) // 2 + 1
        results = [(p, self._probe(profile, peer, quorum, i)) for i, p in enumerate(quorum)]
        broken = [f"{p}: {r}" for p, r in results if isinstance(r, str)]
        if broken:
            cond("S3Reachable", False, "S3Misconfigured", "; ".join(broken))
            cond("Validated", False, "S3Misconfigured", "; ".join(broken))
            return None
        answering = [p for p, r in results if isinstance(r, ProbeResult) and (r.error is None or r.checks)]
        silent = [f"{p} ({r.error})" for p, r in results if isinstance(r, ProbeResult) and p not in answering]
        unfit = [p for p, r in results if isinstance(r, ProbeResult) and p in answering and not r.conditional_writes]
        gone = f" (unreachable: {', '.join(silent)})" if silent else ""
        if len(answering) < majority:
            cond("S3Reachable", False, "QuorumUnavailable",
                 f"{len(answering)} of {len(quorum)} coordination stores answer{gone}; a majority of {majority} is "
                 "needed: roles are frozen until one more answers")
        else:
            cond("S3Reachable", True, "Reachable",
                 f"{len(answering)} of {len(quorum)} coordination stores answer{gone}; a majority of {majority} is "
                 "reachable")
        if unfit:
            cond("Validated", False, "ConditionalWritesUnsupported",
                 f"coordination stores that do not honour conditional writes: {', '.join(unfit)}; they cannot "
                 "decide who is Primary safely")
        elif len(answering) < len(quorum):
            cond("Validated", True, "Succeeded", f"DRClusters found; the stores that answer honour conditional "
                 f"writes; dr-state is replicated over {len(quorum)} stores; peer is {peer}")
            return 30.0
        else:
            cond("Validated", True, "Succeeded", f"DRClusters found; all {len(quorum)} coordination stores honour "
                 f"conditional writes; dr-state is replicated over them; peer is {peer}")
        return None if len(answering) >= majority else 30.0

    def reconcile(self, key: str) -> Result | None:
        pol = self.cache.get(DRPOLICY, key)
        if pol is None:
            return None
        spec = pol.get("spec") or {}
        gen = int(pol["metadata"].get("generation") or 0)
        conds = [Condition.from_dict(c, f"status.conditions[{i}]")
                 for i, c in enumerate((pol.get("status") or {}).get("conditions") or [])]
        clusters = list(spec.get("drClusters") or [])
        known = {dc["metadata"]["name"] for dc in self.cache.list(DRCLUSTER)}
        missing = [c for c in clusters if c not in known]
        now = self.now()

        def cond(ctype: str, ok: bool, reason: str, message: str) -> None:
            nonlocal conds
            conds = set_condition(conds, ctype, ok, reason, message, now=now, observed_generation=gen)

        requeue: float | None = None
        if missing:
            cond("Validated", False, "DRClusterMissing", f"DRCluster objects not found: {', '.join(missing)}")
        elif self.cluster not in clusters:
            cond("Validated", False, "ClusterNotInPolicy",
                 f"this cluster ({self.cluster}) is not one of drClusters {clusters}")
        else:
            peer = next(c for c in clusters if c != self.cluster)
            profile = str(spec.get("s3CoordinationProfile") or "")
            quorum = tuple(str(p) for p in spec.get("s3CoordinationQuorum") or ())
            result = self._probe(profile, peer, quorum) if not quorum else ""
            if quorum:
                requeue = self._quorum_conditions(profile, peer, quorum, cond)
            elif isinstance(result, str):
                cond("S3Reachable", False, "S3Misconfigured", result)
                cond("Validated", False, "S3Misconfigured", result)
            elif result.error is not None and not result.checks:
                cond("S3Reachable", False, result.error.reason, str(result.error))
                cond("Validated", False, result.error.reason, "the coordination store could not be probed")
                requeue = 30.0
            elif not result.conditional_writes:
                cond("S3Reachable", True, "Reachable", "the coordination store answers")
                failed = "; ".join(f"{n}: {d}" for n, ok, d in result.checks if not ok)
                cond("Validated", False, "ConditionalWritesUnsupported",
                     f"the coordination store does not honour conditional writes ({failed}); "
                     "it cannot decide who is Primary safely")
            else:
                median = result.median_latency or 0.0
                cond("S3Reachable", True, "Reachable", f"median round trip {median * 1000:.0f} ms")
                cond("Validated", True, "Succeeded", f"DRClusters found; coordination store honours conditional "
                     f"writes; peer is {peer}")
        self.applier.apply_status(DRPOLICY, pol, {"observedGeneration": gen,
                                                  "conditions": [c.to_dict() for c in conds]})
        return Result(requeue_after=requeue or self.probe_ttl)
