"""A work queue with client-go's semantics.

- A key waiting in the queue is there once, however often it is added.
- A key is never handed to two workers at once: added while being processed,
  it is queued again when `done(key)` is called.
- `add_after` delays an add; `add_rate_limited` delays by the key's own
  exponential backoff, which `forget(key)` resets.
- `shutdown()` wakes every waiting worker; `get()` then returns None.
- `add(key, urgent=True)` (and every delayed add once due) puts the key in a lane served
  before the others: follow-up work of something in flight (a VRG reporting the step asked of
  it, a requeue the reconcile asked for) finishes before a burst of new keys starts, so one
  app's action does not wait behind every other app's first step.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
    def when(self, key: str) -> float:
        """The delay before `key` may be retried; counts a failure."""
        ...

    def forget(self, key: str) -> None:
        """Stop tracking `key` (it succeeded)."""
        ...

    def retries(self, key: str) -> int:
        ...


class ExponentialRateLimiter:
    """Per-key delay base * 2^failures, capped (client-go's ItemExponentialFailureRateLimiter)."""

    def __init__(self, base: float = 0.005, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def when(self, key: str) -> float:
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        # Bound the exponent so huge failure counts never overflow a float.
        delay: float = min(self.cap, self.base * 2.0 ** min(n, 64))
        return delay

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def retries(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)


class WorkQueue:
    """Deduplicating, delaying, rate-limited queue of string keys; safe for many threads."""

    def __init__(self, rate_limiter: RateLimiter | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_limiter: RateLimiter = rate_limiter or ExponentialRateLimiter()
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        # Served first. A key may also sit in the other deque: whichever entry comes out first
        # takes it, the other is skipped (it is no longer dirty, or is being processed).
        self._urgent: deque[str] = deque()
        self._urgent_keys: set[str] = set()  # dirty keys that go to the urgent lane
        self._dirty: set[str] = set()  # keys that need processing (queued, or re-added while processing)
        self._processing: set[str] = set()
        # Dirty keys every add of which was routine (a periodic resync), and keys taken that way:
        # a reconcile may then spare what only a change would need (see `routine`).
        self._routine: set[str] = set()
        self._taken_routine: set[str] = set()
        self._waiting: list[tuple[float, int, str]] = []  # heap of (ready_at, seq, key)
        self._ready_at: dict[str, float] = {}  # earliest pending delayed add per key
        self._seq = itertools.count()
        self._shutting_down = False

    # -- adding ------------------------------------------------------------
    def add(self, key: str, urgent: bool = False, routine: bool = False) -> None:
        """Queue `key`; `routine`: nothing is known to have changed (a resync), see `routine()`."""
        with self._cond:
            self._add_locked(key, urgent, routine)

    def _add_locked(self, key: str, urgent: bool = False, routine: bool = False) -> None:
        if self._shutting_down:
            return
        if key in self._dirty:
            if not routine:
                self._routine.discard(key)
            if urgent and key not in self._urgent_keys:
                self._urgent_keys.add(key)
                if key not in self._processing:
                    self._urgent.append(key)
                    self._cond.notify()
            return
        self._dirty.add(key)
        if routine:
            self._routine.add(key)
        if urgent:
            self._urgent_keys.add(key)
        if key in self._processing:
            return  # queued again by done()
        (self._urgent if urgent else self._queue).append(key)
        self._cond.notify()

    def _pop_locked(self) -> str | None:
        while self._urgent or self._queue:
            key = (self._urgent or self._queue).popleft()
            if key not in self._dirty or key in self._processing:
                continue  # taken through the other lane already
            self._urgent_keys.discard(key)
            self._processing.add(key)
            self._dirty.discard(key)
            if key in self._routine:
                self._routine.discard(key)
                self._taken_routine.add(key)
            return key
        return None

    def routine(self, key: str) -> bool:
        """Whether the key being processed was queued only by routine adds (asked by its reconcile)."""
        with self._cond:
            return key in self._taken_routine

    def add_after(self, key: str, delay: float) -> None:
        """Add `key` once `delay` seconds have passed; the earliest of several pending delays wins."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down:
                return
            ready_at = self._clock() + delay
            current = self._ready_at.get(key)
            if current is not None and current <= ready_at:
                return
            self._ready_at[key] = ready_at
            heapq.heappush(self._waiting, (ready_at, next(self._seq), key))
            self._cond.notify_all()  # a sleeping get() may need to wake earlier

    def add_rate_limited(self, key: str) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: str) -> None:
        self.rate_limiter.forget(key)

    def retries(self, key: str) -> int:
        return self.rate_limiter.retries(key)

    # -- taking ------------------------------------------------------------
    def _promote_due_locked(self) -> float | None:
        """Move due delayed keys into the queue; return seconds until the next one is due."""
        now = self._clock()
        while self._waiting:
            ready_at, _, key = self._waiting[0]
            if self._ready_at.get(key) != ready_at:
                heapq.heappop(self._waiting)  # superseded by an earlier add_after
                continue
            if ready_at > now:
                return ready_at - now
            heapq.heappop(self._waiting)
            del self._ready_at[key]
            self._add_locked(key, urgent=True)
        return None

    def get(self, timeout: float | None = None) -> str | None:
        """The next key to process (the caller must call `done(key)`), or None on shutdown or timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                wait = self._promote_due_locked()
                key = self._pop_locked()
                if key is not None:
                    return key
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            self._taken_routine.discard(key)
            if key in self._dirty and not self._shutting_down:
                (self._urgent if key in self._urgent_keys else self._queue).append(key)
                self._cond.notify()

    # -- lifecycle ---------------------------------------------------------
    def shutdown(self) -> None:
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def __len__(self) -> int:
        """Keys ready now (not counting delayed ones or those being processed)."""
        with self._cond:
            self._promote_due_locked()
            return sum(1 for k in self._dirty if k not in self._processing)

    def pending_delayed(self) -> int:
        with self._cond:
            return len(self._ready_at)

    def processing(self) -> int:
        with self._cond:
            return len(self._processing)
