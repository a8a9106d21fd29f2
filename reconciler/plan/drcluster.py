"""The DRCluster planner: the NetworkFence this cluster should hold against a peer, and the phase."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.kube.jsoncopy import json_copy

NETWORKFENCE_API_VERSION = "csiaddons.openshift.io/v1alpha1"
FENCE_CLASS_ANNOTATION = "drcluster.ramendr.openshift.io/network-fence-class"
DEFAULT_FENCE_CLASS = "default"


# csi-addons writes only `result` and `message` (no observedGeneration), so the message is what
# tells a fence's success from an earlier unfence's, and the other way round.
FENCED_MESSAGE = "fencing operation successful"
UNFENCED_MESSAGE = "unfencing operation successful"


def _succeeded(live: Mapping[str, Any] | None, message: str) -> bool:
    status = (live or {}).get("status") or {}
    return status.get("result") == "Succeeded" and status.get("message") == message


def fence_name(cluster: str) -> str:
    return f"network-fence-{cluster}"


@dataclass(frozen=True)
class FencePlan:
    """`fence` is the desired NetworkFence (None: leave it alone); `delete` removes it."""

    phase: str
    message: str
    fence: dict[str, Any] | None = None
    delete: bool = False


def plan_fence(local_cluster: str, drcluster: Mapping[str, Any], live_fence: Mapping[str, Any] | None) -> FencePlan:
    spec = drcluster.get("spec") or {}
    target = str(spec.get("clusterName") or drcluster["metadata"]["name"])
    state = spec.get("clusterFence") or ""
    result = ((live_fence or {}).get("status") or {}).get("result")
    if target == local_cluster:
        return FencePlan("Available", "this is the local cluster; fencing of it is done from its peer")
    if state in ("ManuallyFenced", "ManuallyUnfenced"):
        phase = "Fenced" if state == "ManuallyFenced" else "Available"
        return FencePlan(phase, f"{state}: fencing is handled outside ramen-p2p")
    if state == "Fenced":
        annotations = drcluster["metadata"].get("annotations") or {}
        desired = {
            "apiVersion": NETWORKFENCE_API_VERSION,
            "kind": "NetworkFence",
            "metadata": {"name": fence_name(target),
                         "labels": {"app.kubernetes.io/managed-by": "ramen-p2p"}},
            "spec": {
                "fenceState": "Fenced",
                "cidrs": list(spec.get("cidrs") or []),
                "networkFenceClassName": annotations.get(FENCE_CLASS_ANNOTATION, DEFAULT_FENCE_CLASS),
            },
        }
        if live_fence is not None:
            desired = _onto(live_fence, desired)
        if (live_fence or {}).get("spec", {}).get("fenceState") == "Fenced" and _succeeded(live_fence, FENCED_MESSAGE):
            return FencePlan("Fenced", f"NetworkFence {fence_name(target)} succeeded", desired)
        if result == "Failed":
            msg = ((live_fence or {}).get("status") or {}).get("message") or "no message"
            return FencePlan("Fencing", f"NetworkFence {fence_name(target)} failed: {msg}", desired)
        return FencePlan("Fencing", f"waiting for NetworkFence {fence_name(target)} to succeed", desired)
    # Unfenced (or unset): undo a fence we hold, first by asking for Unfenced, then by deleting it.
    if live_fence is None:
        return FencePlan("Available", "not fenced")
    if live_fence.get("spec", {}).get("fenceState") == "Unfenced" and _succeeded(live_fence, UNFENCED_MESSAGE):
        return FencePlan("Unfenced", f"NetworkFence {fence_name(target)} lifted", delete=True)
    desired = _onto(live_fence, {"spec": {"fenceState": "Unfenced"}})
    return FencePlan("Unfencing", f"waiting for NetworkFence {fence_name(target)} to unfence", desired)


def _onto(live: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    out = json_copy(dict(live))
    out.pop("status", None)
    for k, v in change.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = json_copy(v)
    return out
