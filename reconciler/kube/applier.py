"""The applier: make a live object look like the desired one with as few writes as possible.

- absent (`live is None`): POST the desired object, then its status if any;
- present: a JSON patch (`application/json-patch+json`) of the difference,
  led by a `test` op on /metadata/resourceVersion so it only applies to the
  exact version the decision was made on; status through /status the same way;
- nothing different: no request at all.

A lost race (409, or 422 from the failed `test`) raises `ConflictError`; the
controller requeues and the next reconcile plans from the newer cached object.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.kube import patch
from reconciler.kube.client import KubeClient, guarded_ops
from reconciler.kube.echoes import Echoes
from reconciler.kube.errors import ApiError, ConflictError
from reconciler.kube.resources import Obj, ResourceType, object_key, resource_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyResult:
    obj: Obj
    """The object as the server last returned it (or `live` when nothing was sent)."""
    created: bool = False
    patched: bool = False
    status_patched: bool = False

    @property
    def changed(self) -> bool:
        return self.created or self.patched or self.status_patched


class Applier:
    """Writes desired objects; counts every write request it sends (`writes`)."""

    def __init__(self, client: KubeClient, echoes: Echoes | None = None) -> None:
        self.client = client
        #: Told of every object written, so watch mappers can drop the echoes of our own writes.
        self.echoes = echoes
        self._lock = threading.Lock()
        self.writes = 0

    def _sent(self) -> None:
        with self._lock:
            self.writes += 1

    def apply(self, resource: ResourceType, desired: Obj, live: Obj | None) -> ApplyResult:
        """Create or patch `desired` (metadata/spec and, if given, status) against `live` from the cache."""
        if live is None:
            return self._create(resource, desired)
        current = live
        patched = status_patched = False
        ops = patch.main_patch(current, desired)
        if ops:
            current = self._patch(resource, current, ops, None)
            patched = True
        if "status" in desired:
            status_ops = patch.status_patch(current, desired["status"])
            if status_ops:
                current = self._patch(resource, current, status_ops, "status" if resource.has_status else None)
                status_patched = True
        return ApplyResult(current, patched=patched, status_patched=status_patched)

    def apply_status(self, resource: ResourceType, live: Obj, desired_status: Obj) -> ApplyResult:
        """Patch only the status of `live` (through /status when the resource has that subresource)."""
        ops = patch.status_patch(live, desired_status)
        if not ops:
            return ApplyResult(live)
        obj = self._patch(resource, live, ops, "status" if resource.has_status else None)
        return ApplyResult(obj, status_patched=True)

    def _create(self, resource: ResourceType, desired: Obj) -> ApplyResult:
        body = patch.creation_body(desired, resource.has_status)
        body.setdefault("apiVersion", resource.api_version)
        body.setdefault("kind", resource.kind)
        self._sent()
        with self._writing(resource, object_key(body) if (body.get("metadata") or {}).get("name") else "") as wrote:
            obj = self.client.create(resource, body)
            wrote(obj)
        log.info("created %s", resource.kind, extra={"key": object_key(obj)})
        status_patched = False
        if resource.has_status and desired.get("status"):
            ops = patch.status_patch(obj, desired["status"])
            if ops:
                obj = self._patch(resource, obj, ops, "status")
                status_patched = True
        return ApplyResult(obj, created=True, status_patched=status_patched)

    def _patch(self, resource: ResourceType, live: Obj, ops: list[patch.Op], subresource: str | None) -> Obj:
        meta = live["metadata"]
        self._sent()
        try:
            with self._writing(resource, object_key(live)) as wrote:
                obj = self.client.json_patch(resource, meta["name"], meta.get("namespace"), guarded_ops(live, ops),
                                             subresource)
                wrote(obj)
        except ApiError as e:
            if e.failed_patch_test:
                raise ConflictError(409, "Conflict", f"{resource.kind} {object_key(live)} changed since "
                                    f"resourceVersion {resource_version(live)}", e.body) from e
            raise
        log.info("patched %s%s (%d ops)", resource.kind, "/" + subresource if subresource else "", len(ops),
                 extra={"key": object_key(live)})
        return obj

    def _writing(self, resource: ResourceType, key: str) -> contextlib.AbstractContextManager[Callable[[Obj], None]]:
        if self.echoes is None:
            return contextlib.nullcontext(lambda _: None)
        return self.echoes.writing(resource, key)
