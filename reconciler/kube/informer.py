"""An informer: list, then watch, keeping a `Store` in step with one resource type.

Semantics follow client-go's reflector:
- the first list is paginated and marks the informer synced;
- the watch asks for bookmarks, and the resourceVersion it resumes from
  follows every event and bookmark, so a reconnect picks up exactly where the
  last watch ended;
- 410 Gone (resourceVersion compacted) forces a fresh list; objects that
  vanished meanwhile are reported as deletes (`Event.synthetic`);
- any other failure reconnects after a jittered exponential backoff;
- every `resync_period` all cached objects are re-delivered as RESYNC events,
  so level-triggered controllers recover from missed work. The period is cut
  into slots and each object is re-delivered in the slot its key hashes to:
  at 5,000 objects, all of them at once were a burst of 5,000 reconciles;
- `metadata.managedFields` is dropped before an object is stored (client-go's
  informers offer the same transform): nothing here reads it, and it is often the
  largest part of a cached object's metadata.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.kube.client import KubeClient, WatchStream, request_origin
from reconciler.kube.errors import ApiError, WatchGone
from reconciler.kube.resources import Obj, ResourceType, object_key, resource_version
from reconciler.kube.store import Delta, IndexFunc, Store

log = logging.getLogger(__name__)


class EventType(enum.Enum):
    ADDED = "ADDED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    RESYNC = "RESYNC"


@dataclass(frozen=True)
class Event:
    """A change seen by the informer. `old` is set for UPDATED; `synthetic` marks a
    delete inferred from a re-list (the final state of the object is unknown)."""

    type: EventType
    obj: Obj
    old: Obj | None = None
    synthetic: bool = False

    @property
    def key(self) -> str:
        return object_key(self.obj)


Handler = Callable[[Event], None]

#: A resync period is delivered in this many slices, each object in the one its key hashes to.
RESYNC_SLOTS = 60


def resync_slot(key: str) -> int:
    """The slice of each resync period in which the object with this key is re-delivered (stable)."""
    return zlib.crc32(key.encode()) % RESYNC_SLOTS


def strip_managed_fields(obj: Obj) -> Obj:
    """`obj` without `metadata.managedFields`, in place. An update that omits the field leaves the
    server's copy unchanged, so writes based on a cached object keep it."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


@dataclass
class Backoff:
    """Jittered exponential delays for reconnects: initial * 2^n, capped."""

    initial: float = 0.5
    cap: float = 30.0
    jitter: float = 0.2
    _failures: int = 0

    def next(self) -> float:
        delay = min(self.cap, self.initial * 2.0 ** min(self._failures, 64))
        self._failures += 1
        jittered: float = delay * (1 + random.uniform(0, self.jitter))
        return jittered

    def reset(self) -> None:
        self._failures = 0


@dataclass
class InformerStats:
    lists: int = 0
    watches: int = 0
    gone: int = 0
    errors: int = 0
    events: int = 0
    bookmarks: int = 0


class Informer:
    """Keeps `store` in step with one resource type (optionally one namespace or label selector)."""

    def __init__(
        self,
        client: KubeClient,
        resource: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        resync_period: float | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        backoff: Backoff | None = None,
        watch_timeout: int = 300,
        page_size: int = 500,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.resync_period = resync_period
        self.store = Store(indexers)
        self.backoff = backoff or Backoff()
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.stats = InformerStats()
        self.resource_version = ""
        self._handlers: list[Handler] = []
        self._dispatch_lock = threading.Lock()  # one event at a time, in order
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        scope = f" in {self.namespace}" if self.namespace else ""
        return f"Informer({self.resource}{scope})"

    # -- public ------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        """Call `handler` for every event; a handler added after sync first sees the cache as ADDED."""
        with self._dispatch_lock:
            self._handlers.append(handler)
            if self._synced.is_set():
                for obj in self.store.list():
                    self._call(handler, Event(EventType.ADDED, obj))

    def has_synced(self) -> bool:
        """True once the first list has filled the store."""
        return self._synced.is_set()

    def is_watching(self) -> bool:
        """True while a watch stream is open (false during an outage or backoff)."""
        return self._stream is not None

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if self._threads:
            return
        self._threads.append(threading.Thread(target=self._run, name=f"informer-{self.resource}", daemon=True))
        if self.resync_period:
            resync = threading.Thread(target=self._resync_loop, name=f"resync-{self.resource}", daemon=True)
            self._threads.append(resync)
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        for t in self._threads:
            t.join(timeout)

    # -- the list/watch loop -----------------------------------------------
    def _run(self) -> None:
        need_list = True
        with request_origin("informer"):
            while not self._stop.is_set():
                try:
                    if need_list:
                        self._list()
                        need_list = False
                    self._watch()
                    self.backoff.reset()  # a watch that ended normally (server timeout) is no failure
                except WatchGone as e:
                    self.stats.gone += 1
                    log.info("resourceVersion too old, re-listing", extra={"resource": str(self.resource),
                                                                          "resourceVersion": self.resource_version,
                                                                          "error": str(e)})
                    need_list = True
                except Exception as e:
                    if self._stop.is_set():
                        break
                    self.stats.errors += 1
                    delay = self.backoff.next()
                    log.warning("list/watch of %s failed, retrying in %.1fs: %s", self.resource, delay, e,
                                extra={"resource": str(self.resource)})
                    self._stop.wait(delay)

    def _list(self) -> None:
        objs: list[Obj] = []
        token: str | None = None
        while True:
            try:
                page = self.client.list(self.resource, self.namespace, self.label_selector,
                                        limit=self.page_size, continue_token=token)
            except WatchGone:
                if token is None:
                    raise
                # The continue token expired mid-list: start over from a fresh snapshot.
                objs, token = [], None
                continue
            kind = self.resource.kind
            for item in page.get("items") or []:
                # Items of a list carry no apiVersion/kind; add them so cached objects are complete.
                item.setdefault("apiVersion", self.resource.api_version)
                item.setdefault("kind", kind)
                objs.append(strip_managed_fields(item))
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                break
        self.stats.lists += 1
        self.resource_version = str(page["metadata"]["resourceVersion"])
        with self._dispatch_lock:
            delta = self.store.replace(objs)
            self._deliver_delta(delta)
            self._synced.set()
        log.info("listed %d %s at resourceVersion %s (+%d ~%d -%d)", len(objs), self.resource,
                 self.resource_version, len(delta.added), len(delta.updated), len(delta.deleted),
                 extra={"resource": str(self.resource)})

    def _watch(self) -> None:
        stream = self.client.watch(self.resource, self.resource_version, self.namespace, self.label_selector,
                                   timeout_seconds=int(self.watch_timeout * random.uniform(1.0, 2.0)))
        self._stream = stream
        self.stats.watches += 1
        if self._stop.is_set():
            stream.close()
        try:
            for ev in stream:
                self._handle_watch_event(ev)
                self.backoff.reset()
                if self._stop.is_set():
                    break
        finally:
            self._stream = None
            stream.close()

    def _handle_watch_event(self, ev: Obj) -> None:
        typ, obj = ev.get("type"), ev.get("object") or {}
        if typ == "ERROR":
            status = int(obj.get("code") or 0)
            err_cls = WatchGone if status == 410 else ApiError
            raise err_cls(status, str(obj.get("reason", "")), str(obj.get("message", "")), obj)
        rv = resource_version(obj)
        if typ == "BOOKMARK":
            self.stats.bookmarks += 1
            self.resource_version = rv
            return
        self.stats.events += 1
        strip_managed_fields(obj)
        key = object_key(obj)
        with self._dispatch_lock:
            if typ in ("ADDED", "MODIFIED"):
                old = self.store.upsert(obj)
                if old is None:
                    self._dispatch(Event(EventType.ADDED, obj))
                else:
                    self._dispatch(Event(EventType.UPDATED, obj, old=old))
            elif typ == "DELETED":
                self.store.delete(key)
                self._dispatch(Event(EventType.DELETED, obj))
            else:
                log.warning("unknown watch event type %r", typ, extra={"key": key})
            self.resource_version = rv

    # -- delivery ----------------------------------------------------------
    def _deliver_delta(self, delta: Delta) -> None:
        for obj in delta.deleted:
            self._dispatch(Event(EventType.DELETED, obj, synthetic=True))
        for obj in delta.added:
            self._dispatch(Event(EventType.ADDED, obj))
        for old, new in delta.updated:
            self._dispatch(Event(EventType.UPDATED, new, old=old))

    def _dispatch(self, event: Event) -> None:
        for handler in self._handlers:
            self._call(handler, event)

    def _call(self, handler: Handler, event: Event) -> None:
        try:
            handler(event)
        except Exception:
            # A faulty handler must not stop the informer for everyone else.
            log.exception("event handler failed", extra={"key": event.key, "event": event.type.value})

    def _resync_loop(self) -> None:
        assert self.resync_period
        slot = 0
        while not self._stop.wait(self.resync_period / RESYNC_SLOTS):
            slot = (slot + 1) % RESYNC_SLOTS
            if not self._synced.is_set():
                continue
            with self._dispatch_lock:
                due = [k for k in self.store.keys() if resync_slot(k) == slot]  # noqa: SIM118 (a Store)
                for key in due:
                    obj = self.store.get(key)
                    if obj is not None:
                        self._dispatch(Event(EventType.RESYNC, obj, old=obj))
