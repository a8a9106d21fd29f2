"""A model of Flux's kustomize-controller for the simulation: applies and prunes the application.

As observed on the real controller: a Kustomization gets Flux's finalizer and its objects applied
when Flux reconciles it; deleting it leaves it Terminating until Flux has pruned what it applied
(here one ConfigMap standing for the application's workloads), then it is gone. One step acts on
every Kustomization; when that happens is the scheduler's business.
"""

from __future__ import annotations

from reconciler.kube.resources import CONFIGMAPS
from reconciler.plan.application import KUSTOMIZATION
from tests.sim.memkube import MemApiServer

FINALIZER = "finalizers.fluxcd.io"
WORKLOAD = "app-workload"  # the ConfigMap that stands for the running application


def flux_step(server: MemApiServer, namespace: str) -> None:
    for k in server.list(KUSTOMIZATION):
        meta = k["metadata"]
        if meta.get("deletionTimestamp"):
            if server.get(CONFIGMAPS, WORKLOAD, namespace) is not None:
                server.delete(CONFIGMAPS, WORKLOAD, namespace, "")
            meta["finalizers"] = []
            server.write(KUSTOMIZATION, k, None)
            continue
        if FINALIZER not in (meta.get("finalizers") or []):
            meta["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
            server.write(KUSTOMIZATION, k, None)
        if server.get(CONFIGMAPS, WORKLOAD, namespace) is None:
            server.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": WORKLOAD, "namespace": namespace}})


def app_running(server: MemApiServer, namespace: str) -> bool:
    return server.objects.get(server.key(CONFIGMAPS, WORKLOAD, namespace)) is not None
