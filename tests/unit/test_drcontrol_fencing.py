"""Which NetworkFence lets a synchronous failover proceed (the controller's peer_fenced)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.api import DRCLUSTER, DRCONTROL, DRPOLICY, NETWORKFENCE, VRG
from reconciler.controllers.drcontrol import DRControlController
from reconciler.controllers.peering import PeeringRegistry, PeeringSettings
from reconciler.kube import Applier
from reconciler.s3peer import ObjectStore
from tests.sim.memkube import ListRecorder, MemApiServer, MemCache, MemKubeClient


def no_store(profile: str) -> ObjectStore:
    raise AssertionError("fencing is decided without S3")


def controller(fence: str, nf_spec: str | None, nf_message: str) -> DRControlController:
    server = MemApiServer()
    server.create(DRCLUSTER, {"metadata": {"name": "west"}, "spec": {"clusterName": "west", "clusterFence": fence}})
    if nf_spec is not None:
        nf: dict[str, Any] = {"metadata": {"name": "network-fence-west"}, "spec": {"fenceState": nf_spec}}
        server.create(NETWORKFENCE, nf)
        live = server.get(NETWORKFENCE, "network-fence-west", None)
        assert live is not None
        live["status"] = {"result": "Succeeded", "message": nf_message}
        server.write(NETWORKFENCE, live, "status")
    client = MemKubeClient(server, lambda _label: lambda: None, lambda: "2026-12-01T00:00:00Z")
    cache = MemCache(server, [DRCONTROL, VRG, DRPOLICY, DRCLUSTER, NETWORKFENCE])
    registry = PeeringRegistry("east", no_store, PeeringSettings())
    return DRControlController("east", client, cache, Applier(client), ListRecorder(), registry)


@pytest.mark.parametrize(("fence", "nf_spec", "message", "fenced"), [
    ("Fenced", "Fenced", "fencing operation successful", True),
    # An unfence that succeeded also says Succeeded: it must not let a synchronous failover go.
    ("Fenced", "Unfenced", "unfencing operation successful", False),
    # Spec changed to Fenced, status still from the earlier unfence.
    ("Fenced", "Fenced", "unfencing operation successful", False),
    ("Fenced", None, "", False),
    ("ManuallyFenced", None, "", True),
    ("Unfenced", "Fenced", "fencing operation successful", False),
])
def test_peer_counts_as_fenced_only_when_the_fence_itself_succeeded(fence: str, nf_spec: str | None, message: str,
                                                                    fenced: bool) -> None:
    assert controller(fence, nf_spec, message).peer_fenced("west") is fenced
