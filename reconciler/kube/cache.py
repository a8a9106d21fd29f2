"""Shared informers, one per resource type: the read side controllers use.

Controllers read only from here, never from the API server, so a reconcile
costs no requests and sees one consistent picture per resource type.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Mapping

from reconciler.kube.client import KubeClient
from reconciler.kube.informer import Backoff, Informer
from reconciler.kube.resources import Obj, ResourceType
from reconciler.kube.store import NAMESPACE_INDEX, IndexFunc


class Cache:
    """Creates and owns one shared informer per (resource type, namespace)."""

    def __init__(self, client: KubeClient, resync_period: float | None = 600.0, backoff: Backoff | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self._backoff = backoff
        self._informers: dict[tuple[ResourceType, str | None], Informer] = {}
        self._lock = threading.Lock()
        self._started = False

    def informer(
        self,
        resource: ResourceType,
        namespace: str | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
    ) -> Informer:
        """The shared informer of `resource` (created on first use, started if the cache runs)."""
        with self._lock:
            inf = self._informers.get((resource, namespace))
            if inf is None:
                backoff = Backoff(self._backoff.initial, self._backoff.cap) if self._backoff else None
                inf = Informer(self.client, resource, namespace=namespace, resync_period=self.resync_period,
                               indexers=indexers, backoff=backoff)
                self._informers[(resource, namespace)] = inf
                if self._started:
                    inf.start()
            else:
                for name, fn in (indexers or {}).items():
                    if not inf.store.has_indexer(name):
                        inf.store.add_indexer(name, fn)
            return inf

    def start(self) -> None:
        with self._lock:
            self._started = True
            informers = list(self._informers.values())
        for inf in informers:
            inf.start()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            informers = list(self._informers.values())
        for inf in informers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not inf.wait_for_sync(left):
                return False
        return True

    def has_synced(self) -> bool:
        with self._lock:
            return all(inf.has_synced() for inf in self._informers.values())

    def stop(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
        for inf in informers:
            inf.stop()

    # -- reads -------------------------------------------------------------
    def _store_for(self, resource: ResourceType, namespace: str | None) -> Informer:
        with self._lock:
            inf = self._informers.get((resource, namespace)) or self._informers.get((resource, None))
        if inf is None:
            raise KeyError(f"no informer for {resource}: register it with Cache.informer() before start")
        return inf

    def get(self, resource: ResourceType, name: str, namespace: str | None = None) -> Obj | None:
        """A deep copy of the cached object, or None when the cache has no such object."""
        return self._store_for(resource, namespace).store.get_by_name(name, namespace if resource.namespaced else None)

    def list(self, resource: ResourceType, namespace: str | None = None) -> list[Obj]:
        return self._store_for(resource, namespace).store.list(namespace)

    def keys(self, resource: ResourceType, namespace: str | None = None) -> builtins.list[str]:
        """The keys ("namespace/name") of the cached objects, without copying any object."""
        store = self._store_for(resource, namespace).store
        return store.index_keys(NAMESPACE_INDEX, namespace) if namespace else store.keys()

    def by_index(self, resource: ResourceType, index: str, value: str) -> builtins.list[Obj]:
        return self._store_for(resource, None).store.by_index(index, value)
