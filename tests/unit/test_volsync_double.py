"""The VolSync test double follows VolSync's state machine (controllers/statemachine/machine.go)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from e2e.volsync_double import machine_step, next_schedule

T0 = dt.datetime(2026, 11, 25, 12, 0, 30, tzinfo=dt.UTC)


def obj(trigger: dict[str, Any], status: dict[str, Any] | None = None, paused: bool = False) -> dict[str, Any]:
    return {"spec": {"trigger": trigger, "paused": paused}, "status": status or {}}


def sync_reason(status: dict[str, Any]) -> tuple[str, str]:
    (c,) = [c for c in status["conditions"] if c["type"] == "Synchronizing"]
    return c["status"], c["reason"]


def test_a_scheduled_source_syncs_at_once_then_waits_for_the_schedule() -> None:
    trig = {"schedule": "*/1 * * * *"}
    s1, done = machine_step(obj(trig), T0)
    assert not done and s1["lastSyncStartTime"] and sync_reason(s1) == ("True", "SyncInProgress")
    s2, done = machine_step(obj(trig, s1), T0 + dt.timedelta(seconds=2))
    assert done and s2["lastSyncTime"] == "2026-11-25T12:00:32Z" and "lastSyncStartTime" not in s2
    assert s2["nextSyncTime"] == "2026-11-25T12:01:00Z" and sync_reason(s2) == ("False", "WaitingForSchedule")
    s3, done = machine_step(obj(trig, s2), T0 + dt.timedelta(seconds=10))
    assert not done and s3 == s2  # not due yet: nothing changes
    s4, _ = machine_step(obj(trig, s2), T0 + dt.timedelta(seconds=31))
    assert s4["lastSyncStartTime"] == "2026-11-25T12:01:01Z"


def test_a_manual_trigger_syncs_once_and_reports_it_in_last_manual_sync() -> None:
    synced, _ = machine_step(obj({"schedule": "*/1 * * * *"}, machine_step(obj({}), T0)[0]), T0)
    trig = {"manual": "vrg-final-sync"}
    started, done = machine_step(obj(trig, synced), T0 + dt.timedelta(seconds=5))
    assert not done and started["lastSyncStartTime"] and "lastManualSync" not in started
    finished, done = machine_step(obj(trig, started), T0 + dt.timedelta(seconds=6))
    assert done and finished["lastManualSync"] == "vrg-final-sync" and "nextSyncTime" not in finished
    assert sync_reason(finished) == ("False", "WaitingForManual")
    again, done = machine_step(obj(trig, finished), T0 + dt.timedelta(seconds=60))
    assert not done and again == finished  # the same tag does not sync twice


def test_a_paused_object_does_not_sync() -> None:
    status, done = machine_step(obj({"manual": "x"}, paused=True), T0)
    assert not done and status == {}


def test_the_schedule_is_the_next_multiple_of_its_minutes() -> None:
    assert next_schedule("*/5 * * * *", T0) == dt.datetime(2026, 11, 25, 12, 5, tzinfo=dt.UTC)
    assert next_schedule("*/1 * * * *", T0.replace(minute=59)) == dt.datetime(2026, 11, 25, 13, 0, tzinfo=dt.UTC)
