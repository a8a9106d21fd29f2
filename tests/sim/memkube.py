"""An in-memory API server, and the client, cache and event recorder the controllers use on it.

Semantics follow the kube-apiserver as the controllers rely on it: resourceVersion
bumps on every change (none for a no-op), metadata.generation bumps when the spec
changes, status is written only through /status for kinds with that subresource, a
JSON patch whose `test` fails is a 422 without causes, create of an existing name is
a 409, and a delete with finalizers only sets deletionTimestamp.

`MemCache` plays the informer cache: it serves the objects as of its last `sync()`,
so the simulation can hold it back (informer lag).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import jsonpatch

from reconciler.kube import Cache, EventRecorder, KubeClient, Obj
from reconciler.kube.errors import ApiError, ConflictError
from reconciler.kube.jsoncopy import json_copy
from reconciler.kube.resources import ResourceType

Key = tuple[str, str | None, str]  # (resource, namespace, name)


class MemApiServer:
    def __init__(self) -> None:
        self.objects: dict[Key, Obj] = {}
        self._rv = 0

    def _bump(self, obj: Obj) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    def key(self, rt: ResourceType, name: str, namespace: str | None) -> Key:
        return (str(rt), namespace if rt.namespaced else None, name)

    def get(self, rt: ResourceType, name: str, namespace: str | None) -> Obj | None:
        obj = self.objects.get(self.key(rt, name, namespace))
        return json_copy(obj) if obj is not None else None

    def list(self, rt: ResourceType) -> list[Obj]:
        return [json_copy(o) for k, o in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
                if k[0] == str(rt)]

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        k = self.key(rt, meta["name"], meta.get("namespace"))
        if k in self.objects:
            raise ConflictError(409, "AlreadyExists", f"{k} already exists")
        obj = json_copy(obj)
        if rt.has_status:
            obj.pop("status", None)
        obj["metadata"]["generation"] = 1
        obj["metadata"]["uid"] = f"uid-{self._rv + 1}"
        self._bump(obj)
        self.objects[k] = obj
        return json_copy(obj)

    def write(self, rt: ResourceType, new: Obj, subresource: str | None) -> Obj:
        meta = new["metadata"]
        k = self.key(rt, meta["name"], meta.get("namespace"))
        old = self.objects.get(k)
        if old is None:
            raise ApiError(404, "NotFound", f"{k} not found")
        new = json_copy(new)
        if subresource == "status":
            merged = json_copy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif rt.has_status:
            if "status" in old:
                new["status"] = json_copy(old["status"])
            else:
                new.pop("status", None)
        for f in ("uid", "generation", "resourceVersion", "deletionTimestamp", "creationTimestamp"):
            if f in old["metadata"]:
                new["metadata"][f] = old["metadata"][f]
            else:
                new["metadata"].pop(f, None)
        if new == old:
            return json_copy(old)
        if {k2: v for k2, v in new.items() if k2 not in ("metadata", "status")} != \
                {k2: v for k2, v in old.items() if k2 not in ("metadata", "status")}:
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        self._bump(new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            del self.objects[k]
        else:
            self.objects[k] = new
        return json_copy(new)

    def delete(self, rt: ResourceType, name: str, namespace: str | None, now: str) -> None:
        k = self.key(rt, name, namespace)
        obj = self.objects.get(k)
        if obj is None:
            raise ApiError(404, "NotFound", f"{k} not found")
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                obj = json_copy(obj)  # the cache may hold the old dict
                obj["metadata"]["deletionTimestamp"] = now
                self._bump(obj)
                self.objects[k] = obj
            return
        del self.objects[k]


class MemKubeClient(KubeClient):
    """KubeClient over a MemApiServer; each request passes the simulation's I/O hook first."""

    def __init__(self, server: MemApiServer, io_hook: Callable[[str], Callable[[], None]],
                 now: Callable[[], str]) -> None:
        # No HTTP transport: every verb below is served from memory.
        self.server = server
        self._io = io_hook
        self._now = now

    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        after = self._io(f"kube GET {rt.kind} {name}")
        obj = self.server.get(rt, name, namespace)
        after()
        if obj is None:
            raise ApiError(404, "NotFound", f"{rt.kind} {name} not found")
        return obj

    def create(self, rt: ResourceType, obj: Obj, namespace: str | None = None) -> Obj:
        after = self._io(f"kube CREATE {rt.kind} {obj['metadata'].get('name')}")
        out = self.server.create(rt, obj)
        after()
        return out

    def json_patch(self, rt: ResourceType, name: str, namespace: str | None, ops: builtins.list[dict[str, Any]],
                   subresource: str | None = None) -> Obj:
        after = self._io(f"kube PATCH {rt.kind}{'/' + subresource if subresource else ''} {name}")
        live = self.server.get(rt, name, namespace)
        if live is None:
            raise ApiError(404, "NotFound", f"{rt.kind} {name} not found")
        try:
            new = jsonpatch.apply_patch(live, ops)
        except jsonpatch.JsonPatchTestFailed as e:
            raise ApiError(422, "Invalid", f"the server rejected our request: {e}", {"details": {}}) from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            raise ApiError(422, "Invalid", str(e), {"details": {"causes": [{"message": str(e)}]}}) from None
        out = self.server.write(rt, new, subresource)
        after()
        return out

    def merge_patch(self, rt: ResourceType, name: str, namespace: str | None, patch: Obj,
                    subresource: str | None = None) -> Obj:
        raise NotImplementedError("the controllers under simulation use JSON patches")

    def replace(self, rt: ResourceType, obj: Obj, subresource: str | None = None) -> Obj:
        raise NotImplementedError("the controllers under simulation use JSON patches")

    def delete(self, rt: ResourceType, name: str, namespace: str | None = None) -> None:
        after = self._io(f"kube DELETE {rt.kind} {name}")
        self.server.delete(rt, name, namespace, self._now())
        after()


class MemCache(Cache):
    """The informer cache: objects as of the last `sync()`; a kind in `lagging` is held back."""

    def __init__(self, server: MemApiServer, kinds: list[ResourceType]) -> None:
        # Informers are replaced by `sync()`; nothing to start.
        self.server = server
        self.kinds = kinds
        self.lagging: set[str] = set()  # kinds whose informer is held back
        self._view: dict[str, dict[tuple[str | None, str], Obj]] = {}
        self.sync(force=True)

    def sync(self, force: bool = False) -> None:
        fresh: dict[str, dict[tuple[str | None, str], Obj]] = {str(rt): {} for rt in self.kinds}
        for (res, ns, name), obj in self.server.objects.items():
            if res in fresh:
                fresh[res][(ns, name)] = obj
        for res, objs in fresh.items():
            if force or res not in self.lagging:
                self._view[res] = objs

    def get(self, resource: ResourceType, name: str, namespace: str | None = None) -> Obj | None:
        obj = self._view[str(resource)].get((namespace if resource.namespaced else None, name))
        return json_copy(obj) if obj is not None else None

    def list(self, resource: ResourceType, namespace: str | None = None) -> list[Obj]:
        return [json_copy(o) for (ns, _), o in sorted(self._view[str(resource)].items(), key=str)
                if namespace is None or ns == namespace]

    def keys(self, resource: ResourceType, namespace: str | None = None) -> builtins.list[str]:
        # In the order of list(), so schedules replay as before.
        return [f"{ns}/{name}" if ns else name for (ns, name), _ in sorted(self._view[str(resource)].items(), key=str)
                if namespace is None or ns == namespace]

    def has_synced(self) -> bool:
        return True


class ListRecorder(EventRecorder):
    """Events kept in a list: they are not what the simulation checks, and must not add I/O points."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))
