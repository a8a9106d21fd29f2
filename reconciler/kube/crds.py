"""Installing a CustomResourceDefinition and waiting until the API serves it."""

from __future__ import annotations

import time

from reconciler.kube.client import KubeClient
from reconciler.kube.errors import ApiError
from reconciler.kube.resources import Obj, ResourceType

CRDS = ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                    namespaced=False)


def established(crd: Obj) -> bool:
    conds = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


def ensure_crd(client: KubeClient, body: Obj, timeout: float = 30.0) -> Obj:
    """Create `body` unless a CRD of that name exists, then wait until it is Established."""
    name = body["metadata"]["name"]
    try:
        client.create(CRDS, body)
    except ApiError as e:
        if e.status != 409:
            raise
    deadline = time.monotonic() + timeout
    while True:
        crd = client.get(CRDS, name)
        if established(crd):
            return crd
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {name} not Established after {timeout:.0f}s")
        time.sleep(0.1)
