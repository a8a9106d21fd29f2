"""An Event recorder (core/v1 Events) that folds repeats, like client-go's EventCorrelator.

The same involved object, type, reason and message within `fold_window`
seconds bumps `count` and `lastTimestamp` of the existing Event instead of
creating another one. Recording is best effort: API errors are logged, never
raised, so an event can never fail a reconcile.

With `senders` > 0 an event is queued and sent by that many threads, as
client-go's broadcaster does: a reconcile never waits on the API server for an
event (in a 1,000-app failover that wait was a tenth of the workers' time). A
full queue drops the event with a warning rather than block (client-go drops
too). `flush()` waits for the queue to drain.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.kube.client import KubeClient
from reconciler.kube.errors import ApiError
from reconciler.kube.resources import EVENTS, Obj, object_key

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")




@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first_timestamp: str
    at: float


class EventRecorder:
    def __init__(
        self,
        client: KubeClient,
        component: str,
        host: str = "",
        fold_window: float = 600.0,
        max_tracked: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        senders: int = 0,
        max_queued: int = 10_000,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.fold_window = fold_window
        self.max_tracked = max_tracked
        self._clock = clock
        self._lock = threading.Lock()  # guards _seen only, never held across an API call
        # The API calls of one event (create, then bumps) are serialised by a lock of its own key,
        # held only while some worker records that event, so workers recording different events
        # never wait on each other's requests.
        self._key_locks: dict[tuple[str, ...], list[Any]] = {}  # key -> [lock, workers using it]
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._queue: queue.Queue[tuple[Obj, str, str, str, str] | None] = queue.Queue(max_queued)
        self._idle = threading.Condition()
        self._unsent = 0  # queued or being sent, guarded by _idle
        self.dropped = 0
        self._senders = [threading.Thread(target=self._send_loop, name=f"events-{i}", daemon=True)
                         for i in range(senders)]
        for t in self._senders:
            t.start()

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        """Record an event about `obj` (any object with apiVersion, kind and metadata)."""
        if not self._senders:
            self._record(obj, type, reason, message, _now())
            return
        meta = obj.get("metadata") or {}
        # Only what the Event names, taken now: the caller may change `obj` afterwards.
        involved = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                    "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion")}}
        with self._idle:
            self._unsent += 1
        try:
            self._queue.put_nowait((involved, type, reason, message, _now()))
        except queue.Full:
            self._sent_one()
            self.dropped += 1
            log.warning("event queue full, dropping event %s: %s", reason, message, extra={"key": object_key(obj)})

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was sent (or failed); False if that took over `timeout`."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._unsent:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to `timeout`), then stop the senders."""
        self.flush(timeout)
        for _ in self._senders:
            self._queue.put(None)

    def _sent_one(self) -> None:
        with self._idle:
            self._unsent -= 1
            if not self._unsent:
                self._idle.notify_all()

    def _send_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._record(*item)
            except Exception:  # a sender must outlive any bad event
                log.exception("could not record event %s", item[2])
            finally:
                self._sent_one()

    def _record(self, obj: Obj, type: str, reason: str, message: str, now: str) -> None:
        meta = obj.get("metadata") or {}
        # Events of cluster-scoped objects go to "default", as kubectl and client-go do.
        namespace = meta.get("namespace") or "default"
        fold_key = (str(obj.get("apiVersion")), str(obj.get("kind")), namespace, str(meta.get("name")),
                    str(meta.get("uid", "")), type, reason, message)
        with self._locked(fold_key):
            with self._lock:
                seen = self._seen.get(fold_key)
            if seen is not None and self._clock() - seen.at > self.fold_window:
                seen = None
            try:
                if seen is not None and self._bump(seen, now):
                    with self._lock:
                        if fold_key in self._seen:
                            self._seen.move_to_end(fold_key)
                    return
                created = self._create(obj, namespace, type, reason, message, now)
                with self._lock:
                    self._seen[fold_key] = created
                    while len(self._seen) > self.max_tracked:
                        self._seen.popitem(last=False)
            except ApiError as e:
                log.warning("could not record event %s: %s", reason, e, extra={"key": object_key(obj)})

    @contextlib.contextmanager
    def _locked(self, key: tuple[str, ...]) -> Iterator[None]:
        with self._lock:
            entry = self._key_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._key_locks[key]

    def _bump(self, seen: _Seen, now: str) -> bool:
        patch = {"count": seen.count + 1, "lastTimestamp": now}
        try:
            self.client.merge_patch(EVENTS, seen.name, seen.namespace, patch)
        except ApiError as e:
            if e.not_found:
                return False  # the Event expired (TTL): start a new one
            raise
        seen.count += 1
        seen.at = self._clock()
        return True

    def _create(self, obj: Obj, namespace: str, type: str, reason: str, message: str, now: str) -> _Seen:
        meta = obj.get("metadata") or {}
        name = f"{meta.get('name')}.{secrets.token_hex(8)}"
        involved = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
                    "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion")}
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "type": type,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
        }
        self.client.create(EVENTS, body, namespace)
        log.info("event %s %s: %s", type, reason, message, extra={"key": object_key(obj)})
        return _Seen(name, namespace, 1, now, self._clock())
