"""A change the peer made is passed on by whichever poll finds it.

A poll finds each change once. The periodic poll used to be the only one that queued the apps it
found changed; a poll taken by a reconcile (its snapshot had expired) or after a nudge found
changes nobody queued, and those apps waited for their next resync. The reader now hands every
poll's changes to its listener. Runs the real Coordinator and PeerReader on the in-memory bucket of
the simulation (a stand-in for S3 that only unit and simulation tests use).
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.s3peer import AppKey, ClusterStatus, Coordinator, ObjectStore, PeerReader, Role
from tests.sim.mems3 import MemBucket, MemS3Client


def _none() -> None:
    return None


def _hook(_label: str) -> Callable[[], None]:
    return _none


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def pair() -> tuple[Coordinator, PeerReader, Clock, list[frozenset[AppKey]]]:
    bucket, late = MemBucket(), []  # type: ignore[var-annotated]
    east = Coordinator(ObjectStore(MemS3Client(bucket, "east", _hook, late), "b"), "east")
    clock = Clock()
    told: list[frozenset[AppKey]] = []
    reader = PeerReader(ObjectStore(MemS3Client(bucket, "west", _hook, late), "b"), "east", poll_interval=30,
                        monotonic=clock, fetch_workers=1, on_changed=told.append)
    return east, reader, clock, told


def test_a_poll_taken_by_a_reconcile_hands_over_what_it_found_changed() -> None:
    east, reader, clock, told = pair()
    a, b = AppKey("ns", "a"), AppKey("ns", "b")
    reader.poll()  # the periodic poll: nothing yet
    assert told == []
    east.write_cluster_status(a, ClusterStatus(Role.PRIMARY, 1))
    east.write_cluster_status(b, ClusterStatus(Role.SECONDARY, 1))
    clock.t += 31  # the snapshot expired before the next periodic poll: a reconcile of `a` polls
    snap = reader.snapshot()
    assert snap.changed == {a, b}
    assert told == [frozenset({a, b})], "b's change must reach the queue though nobody reconciles b"
    reader.poll()  # the periodic poll that follows finds nothing new: only the listener queued b
    assert told == [frozenset({a, b})]


def test_a_snapshot_from_the_cache_hands_over_nothing_again() -> None:
    east, reader, clock, told = pair()
    a = AppKey("ns", "a")
    east.write_cluster_status(a, ClusterStatus(Role.PRIMARY, 1))
    reader.poll()
    assert told == [frozenset({a})]
    clock.t += 5
    reader.snapshot()  # cached: no poll, nothing told twice
    assert told == [frozenset({a})]


def test_a_nudge_poll_hands_over_the_changes_of_every_app() -> None:
    east, reader, clock, told = pair()
    apps = [AppKey("ns", f"app-{i}") for i in range(5)]
    reader.poll()
    for app in apps:
        east.write_cluster_status(app, ClusterStatus(Role.SECONDARY_READY, 2))
    clock.t += 2
    assert reader.invalidate(min_gap=1.0) == 0.0  # one nudge, naming one app
    reader.snapshot()
    assert told == [frozenset(apps)]


def test_the_apps_a_poll_found_changed_are_queued_as_routine_unless_something_else_queued_them() -> None:
    # A peer report is not news of dr-state: the reconcile it brings may plan from the dr-state held
    # (DRControlController.reconcile reads it when the plan would act or the report is ahead).
    from types import SimpleNamespace

    from reconciler.kube.workqueue import WorkQueue
    from reconciler.manager import Manager

    queue = WorkQueue()
    manager = Manager.__new__(Manager)
    manager.controllers = [SimpleNamespace(queue=queue)]  # type: ignore[list-item]
    manager._peer_changes("east", frozenset({AppKey("ns", "a"), AppKey("ns", "b")}))
    queue.add("ns/b")  # and an event of b's own (a VRG update): that one is news
    taken = {queue.get(timeout=1), queue.get(timeout=1)}
    assert taken == {"ns/a", "ns/b"}
    assert queue.routine("ns/a") and not queue.routine("ns/b")
