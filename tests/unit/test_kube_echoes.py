"""Echoes: only the event carrying a version this process wrote is dropped, and only once."""

from __future__ import annotations

import threading
from typing import Any

from reconciler.kube.echoes import Echoes
from reconciler.kube.informer import Event, EventType
from reconciler.kube.resources import ResourceType

WIDGETS = ResourceType("test.example", "v1", "widgets", "Widget")
GADGETS = ResourceType("test.example", "v1", "gadgets", "Gadget")


def obj(rv: str, name: str = "w") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


def keys(e: Echoes, rt: ResourceType, event: Event) -> list[str]:
    return list(e.unless_echo(rt)(event))


def test_the_echo_of_a_write_is_dropped_once_and_other_versions_pass() -> None:
    e = Echoes()
    e.wrote(WIDGETS, obj("5"))
    assert keys(e, WIDGETS, Event(EventType.UPDATED, obj("4"), old=obj("3"))) == ["ns/w"]  # someone else's
    assert keys(e, WIDGETS, Event(EventType.UPDATED, obj("5"), old=obj("4"))) == []
    assert keys(e, WIDGETS, Event(EventType.UPDATED, obj("5"), old=obj("4"))) == ["ns/w"]  # delivered again
    assert len(e) == 0


def test_a_resync_a_delete_and_another_kind_or_object_are_never_echoes() -> None:
    e = Echoes()
    e.wrote(WIDGETS, obj("7"))
    assert keys(e, WIDGETS, Event(EventType.RESYNC, obj("7"), old=obj("7"))) == ["ns/w"]
    assert keys(e, GADGETS, Event(EventType.UPDATED, obj("7"))) == ["ns/w"]
    assert keys(e, WIDGETS, Event(EventType.UPDATED, obj("7", name="other"))) == ["ns/other"]
    assert keys(e, WIDGETS, Event(EventType.DELETED, obj("7"))) == ["ns/w"]
    assert len(e) == 0  # a delete forgets the object's writes


def test_only_the_last_few_writes_of_an_object_are_kept() -> None:
    e = Echoes()
    for rv in range(1, 11):
        e.wrote(WIDGETS, obj(str(rv)))
    assert keys(e, WIDGETS, Event(EventType.UPDATED, obj("1"))) == ["ns/w"]
    assert keys(e, WIDGETS, Event(EventType.ADDED, obj("10"))) == []


def test_an_event_that_overtakes_the_answer_of_its_write_waits_for_it() -> None:
    e = Echoes()
    verdict: list[bool] = []
    with e.writing(WIDGETS, "ns/w") as wrote:
        t = threading.Thread(target=lambda: verdict.append(e.is_echo(WIDGETS, Event(EventType.UPDATED, obj("9")))))
        t.start()
        t.join(0.2)
        assert t.is_alive()  # waiting for the write's answer
        wrote(obj("9"))
    t.join(2)
    assert verdict == [True]


def test_an_event_for_a_write_that_failed_is_not_an_echo() -> None:
    e = Echoes()
    try:
        with e.writing(WIDGETS, "ns/w"):
            raise RuntimeError("409")
    except RuntimeError:
        pass
    assert keys(e, WIDGETS, Event(EventType.UPDATED, obj("3"))) == ["ns/w"]
