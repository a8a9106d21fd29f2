"""A model of Argo CD with the ramen-p2p plugin for the simulation: Applications follow the plugin's answer.

("argocd", c) is Argo CD generating once for cluster c: it asks the plugin (the real decision of
reconciler/integrations/readiness.py over both clusters' DRControls), creates the Application for
c and syncs the application there (one ConfigMap standing for its workloads) when c is in the
answer, and otherwise deletes it: with Argo CD's resources finalizer the workloads go first, then
the Application. An answer that cannot be given (503) changes nothing, as in Argo CD.
("argoack", c) is the plugin's stop acknowledgement for c, through the real functions of
reconciler/integrations/stopack.py. When either happens is the scheduler's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.api import DRCONTROL
from reconciler.integrations import readiness, stopack
from reconciler.kube.resources import CONFIGMAPS
from reconciler.plan.application import STOPPED_ANNOTATION
from tests.sim.fluxmodel import WORKLOAD
from tests.sim.memkube import MemApiServer

APPSET = "app"


def argocd_step(servers: Mapping[str, MemApiServer], applications: set[str], c: str, namespace: str,
                name: str) -> None:
    views = [readiness.ClusterView(n, s.get(DRCONTROL, name, namespace)) for n, s in servers.items()]
    d = readiness.decide(views)
    if d.problem is not None or d.not_found:
        return
    server = servers[c]
    if c in {r.cluster for r in d.ready}:
        applications.add(c)
        if server.get(CONFIGMAPS, WORKLOAD, namespace) is None:
            server.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": WORKLOAD, "namespace": namespace}})
    elif c in applications:
        if server.get(CONFIGMAPS, WORKLOAD, namespace) is not None:
            server.delete(CONFIGMAPS, WORKLOAD, namespace, "")
        applications.discard(c)


def _application(c: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{APPSET}-{c}", "ownerReferences": [{"kind": "ApplicationSet", "name": APPSET}]},
            "spec": {"destination": {"name": c}}}


def ack_step(server: MemApiServer, applications: set[str], c: str, namespace: str, name: str) -> None:
    obj = server.get(DRCONTROL, name, namespace)
    since = stopack.withdrawal_to_acknowledge(obj) if obj is not None else None
    if obj is None or since is None:
        return
    # Module attribute, not a name imported here: the mutant ack-before-application-gone replaces it.
    if stopack.application_remains([_application(a) for a in sorted(applications)], {APPSET}, c):
        return
    obj["metadata"].setdefault("annotations", {})[STOPPED_ANNOTATION] = since
    server.write(DRCONTROL, obj, None)
