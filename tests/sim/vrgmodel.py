"""A model of Ramen's VRG controller for the simulation: one step acts on every VRG's spec.

It reports what the real controller reports once it has acted (state, conditions with
observedGeneration, the final-sync flags, the PVCs it protects with VolSync while Primary,
which the Secondary's rdSpec is built from), and honours finalizers on deletion. How long
that takes is the scheduler's business: a step happens when the schedule says so.
"""

from __future__ import annotations

from typing import Any

from reconciler.api import VRG
from reconciler.kube import Obj
from tests.sim.memkube import MemApiServer


def reported_status(vrg: Obj) -> dict[str, Any]:
    spec = vrg.get("spec") or {}
    gen = int(vrg["metadata"].get("generation") or 0)
    primary = spec.get("replicationState") == "primary"

    def cond(ctype: str, reason: str) -> dict[str, Any]:
        return {"type": ctype, "status": "True", "reason": reason, "observedGeneration": gen}

    volsync = spec.get("volSync")
    # One VolSync PVC per app, as Ramen lists it (its conditions and sync figures change per sync).
    pvcs = [{"name": "data", "namespace": vrg["metadata"].get("namespace"), "protectedByVolSync": True,
             "storageClassName": "volsync-class", "accessModes": ["ReadWriteOnce"],
             "resources": {"requests": {"storage": "1Gi"}}, "storageID": {"id": ""}, "replicationID": {"id": ""},
             "conditions": [cond("DataReady", "Ready")]}] \
        if primary and isinstance(volsync, dict) and not volsync.get("disabled") else []
    return {
        "state": "Primary" if primary else "Secondary",
        "protectedPVCs": pvcs,
        "observedGeneration": gen,
        "conditions": [cond("DataReady", "Ready" if primary else "Replicating"),
                       cond("DataProtected", "Protected"),
                       cond("ClusterDataReady", "Restored"),
                       cond("ClusterDataProtected", "Uploaded")],
        "prepareForFinalSyncComplete": bool(spec.get("prepareForFinalSync")) and primary,
        "finalSyncComplete": bool(spec.get("runFinalSync")) and primary,
    }


def vrg_degrade(server: MemApiServer) -> None:
    """What Ramen's VRG reports while a newly selected PVC is not protected yet: state Unknown,
    DataReady False, for the generation it has seen. The next step reports health again."""
    for vrg in server.list(VRG):
        status = reported_status(vrg)
        status["state"] = "Unknown"
        status["conditions"][0] = {**status["conditions"][0], "status": "False", "reason": "Progressing"}
        vrg["status"] = status
        server.write(VRG, vrg, "status")


def vrg_step(server: MemApiServer, now: str) -> None:
    for vrg in server.list(VRG):
        if vrg["metadata"].get("deletionTimestamp"):
            vrg["metadata"]["finalizers"] = []
            server.write(VRG, vrg, None)
            continue
        status = reported_status(vrg)
        if vrg.get("status") != status:
            vrg["status"] = status
            server.write(VRG, vrg, "status")
