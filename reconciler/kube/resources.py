"""Resource types and object keys: the vocabulary every other module shares.

Objects are plain JSON dicts exactly as the API server returns them; a
`ResourceType` says where such objects live on the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

Obj = dict[str, Any]
"""A Kubernetes object as decoded JSON."""


@dataclass(frozen=True)
class ResourceType:
    """Where one kind of object lives on the API server.

    `group` is "" for the core API (paths under /api/v1), otherwise the API
    group (paths under /apis/<group>/<version>).
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    has_status: bool = True
    """Whether `status` is written through the /status subresource."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def _prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None = None) -> str:
        """The list/watch/create path; without a namespace, all namespaces."""
        if self.namespaced and namespace:
            return f"{self._prefix()}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{self._prefix()}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None, subresource: str | None = None) -> str:
        if self.namespaced and not namespace:
            raise ValueError(f"{self} is namespaced: a namespace is required for {name!r}")
        path = f"{self.collection_path(namespace if self.namespaced else None)}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path


def object_key(obj: Obj) -> str:
    """The cache key of an object: "namespace/name", or "name" when cluster-scoped (as in client-go)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    """The (namespace, name) of a key made by `object_key`."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


# Built-in types the runtime itself uses.
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, has_status=True)
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap", has_status=False)
EVENTS = ResourceType("", "v1", "events", "Event", has_status=False)
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", has_status=False)
