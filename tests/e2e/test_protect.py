"""Scenario 1: initial protection with preferredCluster east."""

from __future__ import annotations

from collections.abc import Callable

from e2e import harness
from tests.e2e.conftest import DRPair


def test_initial_protection_makes_east_primary_at_generation_one(drpair: DRPair) -> None:
    drpair.protect(preferred="east")
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary and ReadyForApplication at generation 1")
    drpair.wait(lambda: drpair.secondary_settled("west", 1), "west Secondary at generation 1")
    east, west = drpair.drc("east"), drpair.drc("west")
    assert harness.ready_for_application(east) and not harness.ready_for_application(west)
    assert (drpair.vrg("east") or {})["spec"]["replicationState"] == "primary"
    assert (drpair.vrg("west") or {})["spec"]["replicationState"] == "secondary"
    assert east["status"]["phase"] == "Protected"
    assert harness.condition(east, "Ready")["status"] == "True"
    assert east["status"]["observedGeneration"] == east["metadata"]["generation"]
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "PeerConnected").get("status") == "True",
                "west sees east's heartbeat")


def test_a_volsync_app_without_a_seed_says_so_and_is_still_protected(drpair: DRPair) -> None:
    drpair.protect_on_east(volsync=True)  # the clusters of this fixture have no volSyncSeedSecretRef
    def seed_missing(c: str) -> Callable[[], bool]:
        return lambda: harness.condition(drpair.drc(c), "VolSyncReady").get("reason") == "VolSyncSeedMissing"

    for c in ("east", "west"):
        drpair.wait(seed_missing(c), f"{c} says the VolSync seed is missing")
        cond = harness.condition(drpair.drc(c), "VolSyncReady")
        assert cond["status"] == "False" and "volSyncSeedSecretRef" in cond["message"]
        names = [s.metadata.name for s in drpair.clusters[c].core.list_namespaced_secret(drpair.namespace).items]
        assert "app-vs-secret" not in names
    assert drpair.primary_ready("east", 1)
