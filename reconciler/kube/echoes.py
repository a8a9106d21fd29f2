"""Echoes: the watch events that only bring back what this process itself just wrote.

A reconcile that writes an object has planned from everything the object says after that
write; reconciling it again when the watch delivers the write re-plans from the same inputs
and writes nothing. What happens next comes from elsewhere (Ramen's VRG status, the S3 polls,
nudges, a requeue the reconcile asked for), and each has its own trigger.

The applier records the resourceVersion of every object it creates or patches; a watch
mapper asks `is_echo` and drops the event when it carries exactly one of those versions.
Anything else (a change by anyone else, a re-list, a resync, a delete) is never an echo.
The watch often delivers a write before its response has been read: an event for an object
with a write in flight waits (briefly, on the informer's thread) for that write's answer.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from reconciler.kube.informer import Event, EventType
from reconciler.kube.resources import Obj, ResourceType, object_key, resource_version

# Versions kept per object: a few writes whose echoes have not arrived yet. Older ones are
# forgotten (their echo then costs one reconcile, as without this).
_PER_OBJECT = 4
#: How long an event waits for the answer of a write in flight to the same object.
IN_FLIGHT_WAIT = 2.0

Key = tuple[str, str]


class Echoes:
    def __init__(self, in_flight_wait: float = IN_FLIGHT_WAIT) -> None:
        self.in_flight_wait = in_flight_wait
        self._cond = threading.Condition()
        self._written: dict[Key, list[str]] = {}
        self._in_flight: dict[Key, int] = {}

    @contextlib.contextmanager
    def writing(self, resource: ResourceType, key: str) -> Iterator[Callable[[Obj], None]]:
        """Around one write: call the yielded function with the object the server returned."""
        k = (str(resource), key)
        with self._cond:
            self._in_flight[k] = self._in_flight.get(k, 0) + 1
        try:
            yield lambda obj: self._record(k, obj)
        finally:
            with self._cond:
                left = self._in_flight[k] - 1
                if left:
                    self._in_flight[k] = left
                else:
                    del self._in_flight[k]
                self._cond.notify_all()

    def wrote(self, resource: ResourceType, obj: Obj) -> None:
        self._record((str(resource), object_key(obj)), obj)

    def _record(self, k: Key, obj: Obj) -> None:
        rv = resource_version(obj)
        if not rv:
            return
        with self._cond:
            versions = self._written.setdefault(k, [])
            versions.append(rv)
            del versions[:-_PER_OBJECT]

    def is_echo(self, resource: ResourceType, event: Event) -> bool:
        """True for the ADDED/UPDATED event of a version this process wrote (once per version)."""
        k = (str(resource), event.key)
        if event.type not in (EventType.ADDED, EventType.UPDATED):
            if event.type == EventType.DELETED:
                with self._cond:
                    self._written.pop(k, None)
            return False
        rv = resource_version(event.obj)
        deadline = time.monotonic() + self.in_flight_wait
        with self._cond:
            while rv not in self._written.get(k, ()) and k in self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            versions = self._written.get(k)
            if not versions or rv not in versions:
                return False
            versions.remove(rv)
            if not versions:
                del self._written[k]
            return True

    def unless_echo(self, resource: ResourceType) -> Callable[[Event], Iterable[str]]:
        """A Controller.watch mapper: the event's own key, unless the event is an echo."""
        return lambda event: () if self.is_echo(resource, event) else (event.key,)

    def __len__(self) -> int:
        with self._cond:
            return len(self._written)
