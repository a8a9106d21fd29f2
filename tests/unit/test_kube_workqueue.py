"""Work queue semantics (client-go's): dedup, one worker per key, delays, per-key backoff, shutdown."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import pytest

from reconciler.kube import ExponentialRateLimiter, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(q: WorkQueue) -> list[str]:
    out = []
    while (key := q.get(timeout=0)) is not None:
        out.append(key)
        q.done(key)
    return out


def test_adds_of_a_waiting_key_are_deduplicated_in_fifo_order() -> None:
    q = WorkQueue()
    for key in ["a", "b", "a", "c", "b", "a"]:
        q.add(key)
    assert len(q) == 3
    assert drain(q) == ["a", "b", "c"]


def test_a_key_being_processed_is_not_handed_to_a_second_worker() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")  # re-added while processing
    q.add("a")
    assert q.get(timeout=0.05) is None, "a second worker got a key still being processed"
    q.done("a")
    assert q.get(timeout=0) == "a", "a key re-added while processing must be processed again after done()"
    q.done("a")
    assert q.get(timeout=0) is None


def test_concurrent_workers_never_overlap_on_a_key_and_process_the_last_add() -> None:
    q = WorkQueue()
    keys = [f"k{i}" for i in range(8)]
    in_flight: dict[str, int] = defaultdict(int)
    overlaps: list[str] = []
    last_added: dict[str, float] = {}
    last_started: dict[str, float] = {}
    lock = threading.Lock()

    def worker() -> None:
        while (key := q.get()) is not None:
            with lock:
                in_flight[key] += 1
                if in_flight[key] > 1:
                    overlaps.append(key)
                last_started[key] = time.monotonic()
            time.sleep(random.uniform(0, 0.002))
            with lock:
                in_flight[key] -= 1
            q.done(key)

    workers = [threading.Thread(target=worker) for _ in range(6)]
    for w in workers:
        w.start()
    for _ in range(3000):
        key = random.choice(keys)
        with lock:
            last_added[key] = time.monotonic()
        q.add(key, urgent=random.random() < 0.3)
    deadline = time.monotonic() + 10
    while (len(q) or q.processing()) and time.monotonic() < deadline:
        time.sleep(0.01)
    q.shutdown()
    for w in workers:
        w.join(5)
    assert overlaps == []
    # Level-triggered guarantee: every key was processed at least once after its last add.
    assert all(last_started[k] >= last_added[k] for k in keys)


def test_urgent_keys_are_served_before_waiting_ones_and_only_once() -> None:
    q = WorkQueue()
    for k in ("a", "b", "c"):
        q.add(k)
    q.add("d", urgent=True)
    q.add("b", urgent=True)  # already waiting: moves ahead, is not doubled
    assert len(q) == 4
    assert drain(q) == ["d", "b", "a", "c"]


def test_an_urgent_add_while_processing_requeues_in_the_urgent_lane() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("n")
    q.add("a", urgent=True)  # a VRG reported while "a" was being reconciled
    q.done("a")
    assert drain(q) == ["a", "n"]


def test_a_delayed_add_once_due_goes_ahead_of_new_keys() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("follow-up", 1.0)
    for k in ("x", "y"):
        q.add(k)
    clock.advance(1.5)
    assert drain(q) == ["follow-up", "x", "y"]


def test_add_after_waits_and_the_earliest_delay_wins() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("a", 5.0)
    q.add_after("b", 2.0)
    q.add_after("b", 10.0)  # later than the pending one: ignored
    assert len(q) == 0 and q.pending_delayed() == 2
    clock.advance(2.0)
    assert drain(q) == ["b"]
    q.add_after("a", 1.0)  # earlier than the pending 5 s: replaces it
    clock.advance(1.0)
    assert drain(q) == ["a"]
    clock.advance(10.0)
    assert drain(q) == [], "the superseded delayed add must not fire again"


def test_add_after_wakes_a_blocked_get_in_real_time() -> None:
    q = WorkQueue()
    t0 = time.monotonic()
    q.add_after("a", 0.2)
    assert q.get(timeout=2) == "a"
    assert 0.18 <= time.monotonic() - t0 < 1.0


def test_rate_limiter_doubles_per_key_up_to_the_cap_and_forget_resets() -> None:
    rl = ExponentialRateLimiter(base=0.01, cap=0.1)
    assert [rl.when("a") for _ in range(6)] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.1, 0.1])
    assert rl.when("b") == pytest.approx(0.01), "backoff is per key"
    assert rl.retries("a") == 6
    rl.forget("a")
    assert rl.retries("a") == 0
    assert rl.when("a") == pytest.approx(0.01)
    for _ in range(5000):
        rl.when("c")  # huge failure counts stay at the cap, no overflow
    assert rl.when("c") == pytest.approx(0.1)


def test_add_rate_limited_delays_by_the_keys_backoff() -> None:
    clock = FakeClock()
    q = WorkQueue(ExponentialRateLimiter(base=1.0, cap=60.0), clock=clock)
    q.add_rate_limited("a")  # 1 s
    clock.advance(0.9)
    assert drain(q) == []
    clock.advance(0.1)
    assert drain(q) == ["a"]
    q.add_rate_limited("a")  # 2 s
    clock.advance(1.5)
    assert drain(q) == []
    clock.advance(0.5)
    assert drain(q) == ["a"]
    q.forget("a")
    q.add_rate_limited("a")  # back to 1 s
    clock.advance(1.0)
    assert drain(q) == ["a"]


def test_shutdown_wakes_blocked_workers_and_ignores_later_adds() -> None:
    q = WorkQueue()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    time.sleep(0.05)
    q.shutdown()
    t.join(2)
    assert not t.is_alive() and got == [None]
    q.add("a")
    q.add_after("b", 0.01)
    assert q.get(timeout=0) is None and len(q) == 0


def test_a_key_queued_only_by_routine_adds_is_taken_as_routine_and_any_other_add_makes_it_news() -> None:
    q = WorkQueue()
    q.add("a", routine=True)
    q.add("a", routine=True)
    q.add("b", routine=True)
    q.add("b")  # a real event for b arrives before it is taken
    taken = {q.get(timeout=1), q.get(timeout=1)}
    assert taken == {"a", "b"}
    assert q.routine("a") and not q.routine("b")
    q.add("a")  # news while a is processed: its next round is not routine
    q.done("a")
    assert not q.routine("a")  # the flag ends with the round
    assert q.get(timeout=1) == "a" and not q.routine("a")
    q.done("a")
    q.done("b")
