"""A thread-safe in-memory object store keyed by "namespace/name", with secondary indexes."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.kube.jsoncopy import json_copy
from reconciler.kube.resources import Obj, object_key, resource_version

IndexFunc = Callable[[Obj], Iterable[str]]
"""Maps an object to the index values it is found under (none, one or several)."""

NAMESPACE_INDEX = "namespace"


def namespace_index(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


@dataclass
class Delta:
    """What a `Store.replace` changed: the informer turns it into handler events."""

    added: list[Obj] = field(default_factory=list)
    updated: list[tuple[Obj, Obj]] = field(default_factory=list)  # (old, new)
    deleted: list[Obj] = field(default_factory=list)


class Store:
    """Objects by key plus indexes, safe for one writer and many readers.

    Readers get deep copies, so a reconciler that edits what it read can never
    corrupt the cache that other workers see.
    """

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index, **(indexers or {})}
        # index name -> index value -> keys
        self._indices: dict[str, dict[str, set[str]]] = {n: {} for n in self._indexers}

    # -- indexes -----------------------------------------------------------
    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        with self._lock:
            if name in self._indexers:
                raise ValueError(f"indexer {name!r} already exists")
            self._indexers[name] = fn
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index_one(name, key, obj)

    def has_indexer(self, name: str) -> bool:
        with self._lock:
            return name in self._indexers

    def _index_one(self, name: str, key: str, obj: Obj) -> None:
        for value in self._indexers[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex_one(self, name: str, key: str, obj: Obj) -> None:
        idx = self._indices[name]
        for value in self._indexers[name](obj):
            keys = idx.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del idx[value]

    def _put(self, key: str, obj: Obj) -> Obj | None:
        old = self._items.get(key)
        for name in self._indexers:
            if old is not None:
                self._unindex_one(name, key, old)
            self._index_one(name, key, obj)
        self._items[key] = obj
        return old

    def _remove(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name in self._indexers:
                self._unindex_one(name, key, old)
        return old

    # -- writes (the informer) ---------------------------------------------
    def upsert(self, obj: Obj) -> Obj | None:
        """Store `obj`; return what it replaced, if anything."""
        with self._lock:
            return self._put(object_key(obj), obj)

    def delete(self, key: str) -> Obj | None:
        with self._lock:
            return self._remove(key)

    def replace(self, objs: Iterable[Obj]) -> Delta:
        """Make the store hold exactly `objs` and report the difference.

        Objects whose resourceVersion did not change are neither replaced nor
        reported, so a re-list after a reconnect produces no spurious events.
        """
        delta = Delta()
        with self._lock:
            fresh = {object_key(o): o for o in objs}
            for key in [k for k in self._items if k not in fresh]:
                old = self._remove(key)
                if old is not None:
                    delta.deleted.append(old)
            for key, obj in fresh.items():
                old = self._items.get(key)
                if old is None:
                    self._put(key, obj)
                    delta.added.append(obj)
                elif resource_version(old) != resource_version(obj):
                    self._put(key, obj)
                    delta.updated.append((old, obj))
        return delta

    # -- reads (the controllers) -------------------------------------------
    # Reads copy, so a caller may change what it gets. Stored objects are replaced, never changed
    # in place, so the copy is made after the lock is let go: readers do not queue behind it.
    def get(self, key: str) -> Obj | None:
        with self._lock:
            obj = self._items.get(key)
        return json_copy(obj) if obj is not None else None

    def get_by_name(self, name: str, namespace: str | None = None) -> Obj | None:
        return self.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            if namespace is None:
                objs = list(self._items.values())
            else:
                objs = [self._items[k] for k in sorted(self._indices[NAMESPACE_INDEX].get(namespace, ()))]
        return json_copy(objs)

    def keys(self) -> builtins.list[str]:
        with self._lock:
            return list(self._items)

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        with self._lock:
            if index not in self._indices:
                raise KeyError(f"no indexer {index!r}; known: {sorted(self._indexers)}")
            objs = [self._items[k] for k in sorted(self._indices[index].get(value, ()))]
        return json_copy(objs)

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        with self._lock:
            return sorted(self._indices[index].get(value, ()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items
