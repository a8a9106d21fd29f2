"""The DRCluster controller: local fencing of a peer, and the peer's storage classes from S3."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.api import DRCLUSTER, NETWORKFENCE
from reconciler.api.conditions import Condition, set_condition
from reconciler.controllers.nudge import peer_config
from reconciler.controllers.peering import PeeringError, PeeringRegistry
from reconciler.kube import Applier, Cache, KubeClient, Obj, Result
from reconciler.kube.errors import ApiError
from reconciler.plan.drcluster import fence_name, plan_fence
from reconciler.s3peer import S3PeerError

log = logging.getLogger(__name__)

_CLASS_FIELDS = ("name", "provisioner", "storageID", "replicationID")
_CLASS_FIELD_MAX = 253


def status_class(raw: Any) -> dict[str, str] | None:
    """A published storage class as DRCluster status accepts it (name and provisioner required), or None.

    The peer's list is not trusted to fit the schema: one bad entry must not fail the status write.
    """
    if not isinstance(raw, dict):
        return None
    out = {k: raw[k] for k in _CLASS_FIELDS
           if isinstance(raw.get(k), str) and 0 < len(raw[k]) <= _CLASS_FIELD_MAX}
    return out if "name" in out and "provisioner" in out else None


@dataclass
class DRClusterController:
    cluster: str
    client: KubeClient
    cache: Cache
    applier: Applier
    peerings: PeeringRegistry
    now: Callable[[], datetime]
    poll_interval: float = 30.0
    # Reads a Secret (namespace, name); when set, a peerEndpoint's credentials are checked up front.
    read_secret: Callable[[str, str], Obj] | None = None

    def _peer_endpoint_condition(self, dc: Obj, conds: list[Condition], now: datetime,
                                 gen: int) -> list[Condition]:
        """Whether nudges to this peer can be sent: refused credentials are shown, not only logged."""
        ep = (dc.get("spec") or {}).get("peerEndpoint")
        if not isinstance(ep, dict) or self.read_secret is None:
            return [c for c in conds if c.type != "PeerEndpointUsable"]
        ref = ep.get("secretRef") or {}
        try:
            peer_config(self.read_secret(str(ref.get("namespace") or ""), str(ref.get("name") or "")), ep)
        except ApiError as e:
            return set_condition(conds, "PeerEndpointUsable", False, "SecretUnreadable",
                                 f"Secret {ref.get('namespace')}/{ref.get('name')}: {e.reason}; no nudges are "
                                 "sent (the peer learns on its next poll)", now=now, observed_generation=gen)
        except ValueError as e:
            return set_condition(conds, "PeerEndpointUsable", False, "UnsafeKubeconfig",
                                 f"{e}; no nudges are sent (the peer learns on its next poll)", now=now,
                                 observed_generation=gen)
        return set_condition(conds, "PeerEndpointUsable", True, "Usable",
                             f"nudges go to {ep.get('apiServer') or 'the server of the Secret'}", now=now,
                             observed_generation=gen)

    def _peer_storage_classes(self, profile: str, peer: str) -> tuple[list[dict[str, Any]], int] | str:
        """The peer's classes fit for DRCluster status, and how many entries were left out."""
        try:
            snap = self.peerings.get(profile, peer).reader.snapshot()
        except (PeeringError, S3PeerError) as e:
            return str(e)
        if snap.storage_classes is None:
            return [], 0
        raw = snap.storage_classes.classes
        fit = [c for c in (status_class(r) for r in raw) if c is not None]
        return fit, len(raw) - len(fit)

    def _digest_condition(self, conds: list[Condition], now: datetime, gen: int) -> list[Condition]:
        problems = [c.digest_problem for c in self.peerings.coordinators().values() if c.digest_problem]
        if problems:
            return set_condition(conds, "DigestPublished", False, "EnvelopeTooLarge",
                                 f"{problems[0]}: the peer does not see this cluster's status changes; protect "
                                 "fewer applications with this coordination store", now=now,
                                 observed_generation=gen)
        return set_condition(conds, "DigestPublished", True, "Published", "the digest of this cluster is written",
                             now=now, observed_generation=gen)

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
        if target == self.cluster:
            conds = self._digest_condition(conds, now, gen)
        else:
            conds = self._peer_endpoint_condition(dc, conds, now, gen)
            got = self._peer_storage_classes(str(spec.get("s3ProfileName") or ""), target)
            if isinstance(got, str):
                conds = set_condition(conds, "S3Reachable", False, "S3Unreachable", got, now=now,
                                      observed_generation=gen)
            else:
                classes, left_out = got
                status["peerStorageClasses"] = classes
                msg = f"{len(classes)} storage classes published by {target}"
                if left_out:
                    msg += f"; {left_out} malformed entries (no name or provisioner, or too long) left out"
                conds = set_condition(conds, "S3Reachable", True, "Reachable", msg, now=now,
                                      observed_generation=gen)
        status.update(observedGeneration=gen, phase=fp.phase, conditions=[c.to_dict() for c in conds])
        self.applier.apply_status(DRCLUSTER, dc, status)
        settled = fp.phase in ("Available", "Fenced", "Unfenced")
        return Result(requeue_after=self.poll_interval if settled else 2.0)
