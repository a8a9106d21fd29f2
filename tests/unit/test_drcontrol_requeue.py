"""Which DRPolicy/DRCluster events requeue every DRControl (the periodic probe must not)."""

from __future__ import annotations

from typing import Any

from reconciler.controllers.drcontrol import affects_drcontrols
from reconciler.kube.informer import Event, EventType


def policy(generation: int = 1, validated: str = "True", reason: str = "Validated", message: str = "ok") -> Any:
    return {"metadata": {"name": "pol", "generation": generation},
            "status": {"conditions": [
                {"type": "Validated", "status": validated, "reason": reason, "message": message},
                {"type": "S3Reachable", "status": "True", "reason": "Reachable", "message": message}]}}


def test_probe_refresh_of_status_messages_requeues_nothing() -> None:
    ev = Event(EventType.UPDATED, policy(message="median round trip 4 ms"), old=policy(message="7 ms"))
    assert not affects_drcontrols(ev)


def test_spec_change_requeues_every_drcontrol() -> None:
    assert affects_drcontrols(Event(EventType.UPDATED, policy(generation=2), old=policy()))


def test_a_new_validated_verdict_requeues_every_drcontrol() -> None:
    ev = Event(EventType.UPDATED, policy(validated="False", reason="ConditionalWritesUnsupported"), old=policy())
    assert affects_drcontrols(ev)


def test_added_deleted_and_resync_events_requeue() -> None:
    for t in (EventType.ADDED, EventType.DELETED, EventType.RESYNC):
        assert affects_drcontrols(Event(t, policy()))
