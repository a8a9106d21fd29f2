"""Install CRDs into a (test) cluster and wait until the API server serves them.

`install_crds(api, OUR_CRDS + EXTERNAL_CRDS)` is idempotent: an existing CRD is replaced with the
file's content, so tests always run against the schema in the working tree.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parent.parent
OUR_CRDS: list[Path] = sorted((ROOT / "crds").glob("*.yaml"))
EXTERNAL_CRDS: list[Path] = sorted((ROOT / "e2e" / "crds").glob("*.yaml"))


class CRDNotEstablished(RuntimeError):
    pass


def load_crds(paths: list[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc.get("kind") != "CustomResourceDefinition":
                raise ValueError(f"{path}: not a CustomResourceDefinition (kind {doc.get('kind')!r})")
            docs.append(doc)
    return docs


def _apply(api: client.ApiextensionsV1Api, body: dict[str, Any]) -> None:
    name = body["metadata"]["name"]
    # Retry on 409: another test process may replace the same CRD between our read and write.
    for _ in range(5):
        try:
            live = api.read_custom_resource_definition(name)
        except ApiException as e:
            if e.status != 404:
                raise
            try:
                api.create_custom_resource_definition(body)
                return
            except ApiException as ce:
                if ce.status != 409:
                    raise
                continue
        replacement = dict(body)
        replacement["metadata"] = {**body["metadata"], "resourceVersion": live.metadata.resource_version}
        try:
            api.replace_custom_resource_definition(name, replacement)
            return
        except ApiException as e:
            if e.status != 409:
                raise
    raise RuntimeError(f"CRD {name}: kept conflicting with concurrent writers")


def _conditions(crd: Any) -> list[Any]:
    return list((crd.status and crd.status.conditions) or [])


def _established(crd: Any) -> bool:
    # After a replace, Established alone may still describe the old generation; NamesAccepted must hold too.
    by_type = {c.type: c.status for c in _conditions(crd)}
    return by_type.get("Established") == "True" and by_type.get("NamesAccepted") == "True"


def wait_established(api: client.ApiextensionsV1Api, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [n for n in pending if not _established(api.read_custom_resource_definition(n))]
        if not pending:
            return
        if time.monotonic() > deadline:
            details = []
            for n in pending:
                conds = _conditions(api.read_custom_resource_definition(n))
                details.append(f"{n}: " + "; ".join(f"{c.type}={c.status} ({c.reason}: {c.message})" for c in conds))
            raise CRDNotEstablished(f"CRDs not Established after {timeout:.0f}s: " + " | ".join(details))
        time.sleep(0.2)


def install_crds(api_client: client.ApiClient, paths: list[Path], timeout: float = 30.0) -> None:
    """Create or replace the CRDs in `paths` and wait until each is Established."""
    api = client.ApiextensionsV1Api(api_client)
    docs = load_crds(paths)
    for doc in docs:
        _apply(api, doc)
    wait_established(api, [d["metadata"]["name"] for d in docs], timeout)
