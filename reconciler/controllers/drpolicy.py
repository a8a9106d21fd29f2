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

    def _probe(self, profile: str, peer: str) -> ProbeResult | str:
        """The capability probe of a profile, re-run at most every probe_ttl seconds; a str is a config problem."""
        with self._lock:
            hit = self._probes.get(profile)
            if hit is not None and time.monotonic() - hit[0] < self.probe_ttl:
                return hit[1]
        result: ProbeResult | str
        try:
            peering = self.peerings.get(profile, peer)
            result = probe(peering.coordinator.store, key_prefix=self.peerings.settings.key_prefix,
                           latency_samples=3)
        except (PeeringError, S3PeerError) as e:
            result = str(e)
        with self._lock:
            self._probes[profile] = (time.monotonic(), result)
        return result

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
            result = self._probe(str(spec.get("s3CoordinationProfile") or ""), peer)
            if isinstance(result, str):
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
