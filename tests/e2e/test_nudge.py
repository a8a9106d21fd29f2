"""Direct nudges through peerEndpoint: the peers act at once instead of on their next S3 poll."""

from __future__ import annotations

from e2e import harness
from reconciler.controllers.nudge import NUDGE_ANNOTATION
from tests.e2e.conftest import DRPair


def test_with_peer_endpoints_a_relocate_completes_without_waiting_for_a_poll(drpair: DRPair) -> None:
    kubeconfigs = {name: c.kubeconfig for name, c in drpair.clusters.items()}
    for c in drpair.clusters.values():
        harness.configure_cluster(c, drpair.env.s3, peer_kubeconfigs=kubeconfigs)
    # Polls every ten minutes: only a nudge can move anything within this test.
    for op in drpair.operators.values():
        op.stop()
        op.argv += ["--peer-poll-interval", "10m", "--peer-stale-after", "30m"]
        op.start()
    drpair.protect_on_east()
    for c in drpair.clusters.values():
        harness.set_action(c, drpair.namespace, "Relocate", "west")
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2 through nudges")
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east Secondary at generation 2 through nudges")
    for name in ("east", "west"):
        assert NUDGE_ANNOTATION in (drpair.drc(name)["metadata"].get("annotations") or {}), name
