"""The event recorder: different events are recorded concurrently, one event's writes in order;
with senders, a reconcile never waits on an event's request and a full queue drops, never blocks.

Its API calls go to a stand-in client that blocks until told to answer (what the real API
server does is covered in tests/integration/test_kube_controller.py).
"""

from __future__ import annotations

import threading
from typing import Any

from reconciler.kube.events import EventRecorder


class BlockingClient:
    """Answers `create` and `merge_patch` only once `release` is set; counts what is in flight."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls: list[tuple[str, str]] = []

    def _call(self, what: str, name: str) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.calls.append((what, name))
        self.release.wait(5)
        with self.lock:
            self.in_flight -= 1

    def create(self, resource: Any, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self._call("create", body["metadata"]["name"])
        return body

    def merge_patch(self, resource: Any, name: str, namespace: str | None, patch: dict[str, Any]) -> dict[str, Any]:
        self._call("patch", name)
        return {}


def drc(name: str) -> dict[str, Any]:
    return {"apiVersion": "ramendr.openshift.io/v1alpha1", "kind": "DRControl",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}}


def test_workers_recording_different_events_do_not_wait_on_each_others_requests() -> None:
    client = BlockingClient()
    rec = EventRecorder(client, "test")  # type: ignore[arg-type]
    threads = [threading.Thread(target=rec.event, args=(drc(f"app-{i}"), "Normal", "Primary", "m"))
               for i in range(8)]
    for t in threads:
        t.start()
    deadline = threading.Event()
    for _ in range(50):  # up to 5 s for all eight to be in flight at once
        with client.lock:
            if client.in_flight == 8:
                break
        deadline.wait(0.1)
    client.release.set()
    for t in threads:
        t.join(5)
    assert client.most_in_flight == 8
    assert not rec._key_locks  # a key's lock lives only while a worker records that event


def test_the_same_event_twice_is_one_create_then_one_bump_in_that_order() -> None:
    client = BlockingClient()
    client.release.set()
    rec = EventRecorder(client, "test")  # type: ignore[arg-type]
    threads = [threading.Thread(target=rec.event, args=(drc("app"), "Normal", "Primary", "same")) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert [what for what, _ in client.calls] == ["create", "patch"]
    assert client.calls[0][1] == client.calls[1][1]


def test_with_senders_recording_returns_before_the_api_answers_and_flush_waits_for_it() -> None:
    client = BlockingClient()  # answers nothing until released
    rec = EventRecorder(client, "test", senders=2)  # type: ignore[arg-type]
    for i in range(4):
        rec.event(drc(f"app-{i}"), "Normal", "Primary", "m")  # would block 5 s each if sent inline
    assert not rec.flush(timeout=0.2)  # two in flight, two queued
    with client.lock:
        assert client.in_flight == 2
    client.release.set()
    assert rec.flush(timeout=5)
    assert sorted(name.split(".")[0] for _, name in client.calls) == [f"app-{i}" for i in range(4)]
    rec.stop()


def test_with_senders_the_same_event_twice_is_still_one_create_then_one_bump() -> None:
    client = BlockingClient()
    client.release.set()
    rec = EventRecorder(client, "test", senders=4)  # type: ignore[arg-type]
    obj = drc("app")
    rec.event(obj, "Normal", "Primary", "same")
    obj["metadata"]["name"] = "changed-afterwards"  # the event names the object as it was
    rec.event(drc("app"), "Normal", "Primary", "same")
    assert rec.flush(timeout=5)
    assert [what for what, _ in client.calls] == ["create", "patch"]
    assert client.calls[0][1].startswith("app.") and client.calls[0][1] == client.calls[1][1]
    rec.stop()


def test_a_full_queue_drops_the_event_instead_of_blocking() -> None:
    client = BlockingClient()
    rec = EventRecorder(client, "test", senders=1, max_queued=2)  # type: ignore[arg-type]
    for i in range(6):  # one in flight, two queued, the rest dropped
        rec.event(drc(f"app-{i}"), "Normal", "Primary", "m")
    assert rec.dropped >= 3
    client.release.set()
    assert rec.flush(timeout=5)
    assert len(client.calls) == 6 - rec.dropped
    rec.stop()
