"""A write the controller could not make turns a planned condition False, as the planner's conditions go."""

from __future__ import annotations

from typing import Any

from reconciler.api.conditions import MAX_MESSAGE
from reconciler.controllers.drcontrol import _vrg_write_failed


def status(vrg_healthy: str, since: str) -> dict[str, Any]:
    return {"phase": "FailedOver", "conditions": [
        {"type": "ReadyForApplication", "status": "False", "reason": "Progressing", "message": "m",
         "lastTransitionTime": "2026-12-07T10:00:00Z", "observedGeneration": 3},
        {"type": "VRGHealthy", "status": vrg_healthy, "reason": "DataReady", "message": "m",
         "lastTransitionTime": since, "observedGeneration": 3}]}


def vrg_healthy(s: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in s["conditions"] if c["type"] == "VRGHealthy")


def test_a_failed_vrg_write_flips_vrg_healthy_at_now() -> None:
    before = status("True", "2026-12-07T10:00:00Z")
    after = _vrg_write_failed(before, "HTTP 403 forbidden", "2026-12-07T11:00:00Z")
    c = vrg_healthy(after)
    assert (c["status"], c["reason"]) == ("False", "VRGWriteFailed")
    assert c["message"] == "could not write the VRG: HTTP 403 forbidden"
    assert c["lastTransitionTime"] == "2026-12-07T11:00:00Z" and c["observedGeneration"] == 3
    assert vrg_healthy(before)["status"] == "True"  # the planned status is not changed in place


def test_repeated_failures_keep_the_time_of_the_flip() -> None:
    # Every failed retry used to move the time on: a watcher saw the condition flip on each one.
    failed = _vrg_write_failed(status("True", "2026-12-07T10:00:00Z"), "HTTP 500", "2026-12-07T11:00:00Z")
    again = _vrg_write_failed(failed, "HTTP 500", "2026-12-07T11:05:00Z")
    assert vrg_healthy(again)["lastTransitionTime"] == "2026-12-07T11:00:00Z"


def test_a_flip_in_the_second_of_the_previous_moves_a_second_on() -> None:
    c = vrg_healthy(_vrg_write_failed(status("True", "2026-12-07T11:00:00Z"), "x", "2026-12-07T11:00:00Z"))
    assert c["lastTransitionTime"] == "2026-12-07T11:00:01Z"


def test_a_huge_api_message_is_cut_to_what_the_crd_accepts() -> None:
    c = vrg_healthy(_vrg_write_failed(status("True", "2026-12-07T10:00:00Z"), "x" * 100_000,
                                      "2026-12-07T11:00:00Z"))
    assert len(c["message"]) == MAX_MESSAGE and c["message"].endswith("...")
