"""The DRCluster controller: local fencing of a peer, and the peer's storage classes from S3."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.api import DRCLUSTER, NETWORKFENCE
from reconciler.api.conditions import Condition, set_condition
from reconciler.controllers.peering import PeeringError, PeeringRegistry
from reconciler.kube import Applier, Cache, KubeClient, Result
from reconciler.kube.errors import ApiError
from reconciler.plan.drcluster import fence_name, plan_fence
from reconciler.s3peer import S3PeerError

log = logging.getLogger(__name__)


@dataclass
class DRClusterController:
    cluster: str
    client: KubeClient
    cache: Cache
    applier: Applier
    peerings: PeeringRegistry
    now: Callable[[], datetime]
    poll_interval: float = 30.0

    def _peer_storage_classes(self, profile: str, peer: str) -> list[dict[str, Any]] | str:
        try:
            snap = self.peerings.get(profile, peer).reader.snapshot()
        except (PeeringError, S3PeerError) as e:
            return str(e)
        if snap.storage_classes is None:
            return []
        keep = ("name", "provisioner", "storageID", "replicationID")
        return [{k: c[k] for k in keep if k in c} for c in snap.storage_classes.classes if "name" in c]

    def reconcile(self, key: str) -> Result | None:
        dc = self.cache.get(DRCLUSTER, key)
        if dc is None:
            return None
        spec = dc.get("spec") or {}
        target = str(spec.get("clusterName") or key)
        gen = int(dc["metadata"].get("generation") or 0)
        live_fence = self.cache.get(NETWORKFENCE, fence_name(target))
        fp = plan_fence(self.cluster, dc, live_fence)
        if fp.delete and live_fence is not None:
            try:
                self.client.delete(NETWORKFENCE, fence_name(target))
            except ApiError as e:
                if not e.not_found:
                    raise
        elif fp.fence is not None:
            self.applier.apply(NETWORKFENCE, fp.fence, live_fence)

        status = dict(dc.get("status") or {})
        conds = [Condition.from_dict(c, f"status.conditions[{i}]")
                 for i, c in enumerate(status.get("conditions") or [])]
        now = self.now()
        fenced = fp.phase == "Fenced"
        conds = set_condition(conds, "Fenced", fenced, fp.phase, fp.message, now=now, observed_generation=gen)
        if target != self.cluster:
            classes = self._peer_storage_classes(str(spec.get("s3ProfileName") or ""), target)
            if isinstance(classes, str):
                conds = set_condition(conds, "S3Reachable", False, "S3Unreachable", classes, now=now,
                                      observed_generation=gen)
            else:
                status["peerStorageClasses"] = classes
                conds = set_condition(conds, "S3Reachable", True, "Reachable",
                                      f"{len(classes)} storage classes published by {target}", now=now,
                                      observed_generation=gen)
        status.update(observedGeneration=gen, phase=fp.phase, conditions=[c.to_dict() for c in conds])
        self.applier.apply_status(DRCLUSTER, dc, status)
        settled = fp.phase in ("Available", "Fenced", "Unfenced")
        return Result(requeue_after=self.poll_interval if settled else 2.0)
