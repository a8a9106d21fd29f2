"""The fencing planner: which NetworkFence to hold against a peer, and when a result counts."""

from __future__ import annotations

from typing import Any

from reconciler.plan.drcluster import FENCED_MESSAGE, UNFENCED_MESSAGE, plan_fence


def dc(name: str, fence: str, cidrs: list[str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"clusterName": name, "clusterFence": fence,
                                                 "cidrs": cidrs or ["10.0.0.0/16"]}}


def nf(state: str, result: str = "", message: str = "") -> dict[str, Any]:
    return {"metadata": {"name": "network-fence-west", "resourceVersion": "3"},
            "spec": {"fenceState": state, "cidrs": ["10.0.0.0/16"], "networkFenceClassName": "default"},
            "status": {"result": result, "message": message}}


def test_the_local_cluster_is_never_fenced_from_itself() -> None:
    p = plan_fence("west", dc("west", "Fenced"), None)
    assert p.fence is None and p.phase == "Available"


def test_fenced_creates_a_network_fence_with_the_cidrs() -> None:
    p = plan_fence("east", dc("west", "Fenced", ["192.168.1.0/24"]), None)
    assert p.fence is not None and p.phase == "Fencing"
    assert p.fence["metadata"]["name"] == "network-fence-west"
    assert p.fence["spec"] == {"fenceState": "Fenced", "cidrs": ["192.168.1.0/24"], "networkFenceClassName": "default"}


def test_fenced_only_when_the_fence_operation_itself_succeeded() -> None:
    assert plan_fence("east", dc("west", "Fenced"), nf("Fenced", "Succeeded", FENCED_MESSAGE)).phase == "Fenced"
    # A success left over from an unfence does not count for a fence.
    assert plan_fence("east", dc("west", "Fenced"), nf("Fenced", "Succeeded", UNFENCED_MESSAGE)).phase == "Fencing"


def test_unfencing_asks_for_unfenced_and_deletes_only_after_the_unfence_succeeded() -> None:
    asked = plan_fence("east", dc("west", "Unfenced"), nf("Fenced", "Succeeded", FENCED_MESSAGE))
    assert asked.fence is not None and asked.fence["spec"]["fenceState"] == "Unfenced" and not asked.delete
    stale = plan_fence("east", dc("west", "Unfenced"), nf("Unfenced", "Succeeded", FENCED_MESSAGE))
    assert not stale.delete and stale.phase == "Unfencing"
    done = plan_fence("east", dc("west", "Unfenced"), nf("Unfenced", "Succeeded", UNFENCED_MESSAGE))
    assert done.delete and done.phase == "Unfenced"


def test_a_failed_fence_is_reported_with_its_message() -> None:
    p = plan_fence("east", dc("west", "Fenced"), nf("Fenced", "Failed", "driver not found"))
    assert p.phase == "Fencing" and "driver not found" in p.message


def test_manual_fencing_is_left_alone() -> None:
    p = plan_fence("east", dc("west", "ManuallyFenced"), None)
    assert p.fence is None and p.phase == "Fenced"
