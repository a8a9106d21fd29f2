"""Controller runner semantics without an API server: retries, requeues, graceful stop."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from kubernetes import client as k8s

from reconciler.kube import Cache, ConflictError, Controller, ExponentialRateLimiter, KubeClient, Reconcile, Result


def make(reconcile: Reconcile, workers: int = 2) -> Controller:
    cache = Cache(KubeClient(k8s.ApiClient()))  # no informers registered: never contacts a server
    ctl = Controller("test", reconcile, cache, workers=workers, rate_limiter=ExponentialRateLimiter(0.01, 0.05))
    ctl.start(sync_timeout=1)
    return ctl


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_failing_reconcile_is_retried_with_backoff_until_it_succeeds() -> None:
    calls: list[float] = []

    def reconcile(key: str) -> Result:
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise RuntimeError("boom")
        return Result()

    ctl = make(reconcile)
    try:
        ctl.queue.add("ns/a")
        wait_until(lambda: len(calls) == 4)
        gaps = [b - a for a, b in itertools.pairwise(calls)]
        assert gaps[0] >= 0.009 and gaps[1] >= 0.019 and gaps[2] >= 0.039  # 10 ms, 20 ms, 40 ms
        wait_until(lambda: ctl.queue.retries("ns/a") == 0)  # success forgets the backoff
        assert ctl.stats.errors == 3
    finally:
        ctl.stop()


def test_a_conflict_is_requeued_and_counted_apart_from_errors() -> None:
    calls: list[str] = []

    def reconcile(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise ConflictError(409, "Conflict", "stale")

    ctl = make(reconcile)
    try:
        ctl.queue.add("ns/a")
        wait_until(lambda: len(calls) == 2)
        assert ctl.stats.conflicts == 1 and ctl.stats.errors == 0
    finally:
        ctl.stop()


def test_requeue_after_runs_the_key_again_after_the_delay() -> None:
    calls: list[float] = []

    def reconcile(key: str) -> Result:
        calls.append(time.monotonic())
        return Result(requeue_after=0.2) if len(calls) == 1 else Result()

    ctl = make(reconcile)
    try:
        ctl.queue.add("a")
        wait_until(lambda: len(calls) == 2)
        assert calls[1] - calls[0] >= 0.19
        time.sleep(0.3)
        assert len(calls) == 2
    finally:
        ctl.stop()


def test_one_key_is_never_reconciled_by_two_workers_at_once() -> None:
    active = 0
    max_active = 0
    runs = 0
    lock = threading.Lock()

    def reconcile(key: str) -> None:
        nonlocal active, max_active, runs
        with lock:
            active += 1
            runs += 1
            max_active = max(max_active, active)
        time.sleep(0.02)
        with lock:
            active -= 1

    ctl = make(reconcile, workers=4)
    try:
        for _ in range(20):
            ctl.queue.add("same")
            time.sleep(0.005)
        wait_until(lambda: len(ctl.queue) == 0 and ctl.queue.processing() == 0)
        assert max_active == 1
        assert 2 <= runs < 20  # adds during processing fold into one more run
    finally:
        ctl.stop()


def test_stop_lets_an_in_flight_reconcile_finish() -> None:
    started, finished = threading.Event(), threading.Event()

    def reconcile(key: str) -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    ctl = make(reconcile, workers=1)
    ctl.queue.add("a")
    assert started.wait(2)
    ctl.queue.add("b")
    ctl.stop()
    assert finished.is_set()
    assert ctl.stats.reconciles == 1, "no new key is taken after stop()"
