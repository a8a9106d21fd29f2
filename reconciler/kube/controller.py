"""The controller runner: informers feed keys into a work queue; N workers reconcile them.

    controller = Controller("drcontrol", reconcile, cache, workers=2)
    controller.watch(DRCONTROLS)
    controller.watch(VRGS)                   # same namespace/name as the DRControl
    controller.watch(NETWORKFENCES, mapper)  # any keys a function derives
    controller.start(); ...; controller.stop()

`reconcile(key)` returns a `Result` (or None). It raising means "retry with
this key's backoff"; a `ConflictError` is expected under contention and is
logged quietly. Success resets the key's backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconciler.kube.cache import Cache
from reconciler.kube.client import request_origin
from reconciler.kube.errors import ConflictError
from reconciler.kube.informer import Event, EventType, Informer
from reconciler.kube.resources import ResourceType
from reconciler.kube.workqueue import RateLimiter, WorkQueue

log = logging.getLogger(__name__)

RECONCILE_ORIGIN = "reconcile"
"""The request origin (see `request_origin`) of every request made inside a reconcile."""


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: nothing, a retry after a delay, or a rate-limited retry."""

    requeue_after: float | None = None
    requeue: bool = False


Reconcile = Callable[[str], Result | None]
KeyMapper = Callable[[Event], Iterable[str]]


def same_key(event: Event) -> list[str]:
    return [event.key]


@dataclass
class ControllerStats:
    reconciles: int = 0
    errors: int = 0
    conflicts: int = 0


class Controller:
    """Runs `reconcile` for keys derived from informer events, never two at once for one key."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        cache: Cache,
        workers: int = 2,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self.reconcile = reconcile
        self.cache = cache
        self.workers = workers
        self.queue = WorkQueue(rate_limiter)
        self.stats = ControllerStats()
        self._stats_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def watch(self, resource: ResourceType, mapper: KeyMapper = same_key, namespace: str | None = None,
              urgent: bool = False) -> Informer:
        """Enqueue the keys `mapper` derives from every event of `resource` (default: the object's own key);
        `urgent`: ahead of other keys (events that report progress of work in flight)."""
        inf = self.cache.informer(resource, namespace)

        def enqueue(event: Event) -> None:
            routine = event.type == EventType.RESYNC
            for key in mapper(event):
                self.queue.add(key, urgent, routine)

        inf.add_handler(enqueue)
        return inf

    def start(self, sync_timeout: float | None = 60.0) -> None:
        """Start the cache, wait for its first lists, then start the workers."""
        self.cache.start()
        if not self.cache.wait_for_sync(sync_timeout):
            raise TimeoutError(f"controller {self.name}: caches did not sync within {sync_timeout}s")
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"{self.name}-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("controller %s started with %d workers", self.name, self.workers, extra={"controller": self.name})

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking keys, let in-flight reconciles finish (up to `timeout`), then stop the workers."""
        self.queue.shutdown()
        for t in self._threads:
            t.join(timeout)
        log.info("controller %s stopped", self.name, extra={"controller": self.name})

    def _count(self, field: str) -> None:
        with self._stats_lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self._process(key)
            finally:
                self.queue.done(key)

    def _process(self, key: str) -> None:
        extra = {"controller": self.name, "key": key}
        self._count("reconciles")
        try:
            with request_origin(RECONCILE_ORIGIN):
                result = self.reconcile(key) or Result()
        except ConflictError as e:
            # Someone wrote first; the informer will bring the newer object, retry from it.
            self._count("conflicts")
            log.info("conflict, retrying: %s", e.message, extra=extra)
            self.queue.add_rate_limited(key)
            return
        except Exception:
            self._count("errors")
            log.exception("reconcile failed (retry %d)", self.queue.retries(key) + 1, extra=extra)
            self.queue.add_rate_limited(key)
            return
        if result.requeue:
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)
