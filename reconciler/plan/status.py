"""Building a DRControl status from the previous one: conditions that keep their history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.api.common import ModelError, parse_time
from reconciler.api.conditions import Condition, get_condition, set_condition
from reconciler.kube.jsoncopy import json_copy


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


class StatusBuilder:
    """Accumulates the desired status; conditions keep lastTransitionTime unless their status flips."""

    def __init__(self, previous: Mapping[str, Any] | None, generation: int, now: str) -> None:
        self.previous: dict[str, Any] = json_copy(dict(previous or {}))
        self.status: dict[str, Any] = json_copy(self.previous)
        self.generation = generation
        self.now = now
        self.status["observedGeneration"] = generation
        self._conditions: list[Condition] = []
        for i, c in enumerate(self.previous.get("conditions") or []):
            try:
                self._conditions.append(Condition.from_dict(c, f"status.conditions[{i}]"))
            except ModelError:
                continue  # a malformed condition is rewritten from scratch

    def condition(self, ctype: str, status: bool, reason: str, message: str) -> None:
        self._conditions = set_condition(self._conditions, ctype, status, reason, message,
                                         now=parse_time(self.now), observed_generation=self.generation)

    def get(self, ctype: str) -> Condition | None:
        return get_condition(self._conditions, ctype)

    def keep_condition(self, ctype: str, reason: str, message: str) -> None:
        """Leave a condition as it was (roles freeze); never reported before, it is False."""
        old = get_condition(self._conditions, ctype)
        if old is None:
            self.condition(ctype, False, reason, message)
        else:
            self._conditions = [replace(c, observed_generation=self.generation) if c.type == ctype else c
                                for c in self._conditions]

    def build(self) -> dict[str, Any]:
        order = ["Ready", "ReadyForApplication", "S3Reachable", "PeerConnected", "VRGHealthy", "Reconciling",
                 "Stalled"]
        conds = sorted(self._conditions, key=lambda c: (order.index(c.type) if c.type in order else len(order),
                                                         c.type))
        self.status["conditions"] = [c.to_dict() for c in conds]
        return self.status

    def transition_events(self) -> list[Event]:
        """Events for what changed between the previous and the desired status."""
        return events_between(self.previous, self.build())


def events_between(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    """Events for what changed from status `previous` to status `new`.

    A phase change rides on the first other Event of the same change, which tells why (a new
    Primary, the application's go or stop, trouble); only a change nothing else tells is an Event
    of its own (PhaseChanged). At a thousand apps per action each Event is an API write: a failover
    told its two steps in four Events, and tells them in two.
    """
    events: list[Event] = []
    if new.get("currentPrimary") != previous.get("currentPrimary") and new.get("currentPrimary"):
        events.append(Event("Normal", "PrimaryChanged",
                            f"primary is {new['currentPrimary']} at generation {new.get('generation')}"))
    old_conds = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, Mapping)}
    s3_reasons = {c.get("reason") for c in (old_conds.get("S3Reachable"), *new["conditions"])
                  if isinstance(c, Mapping) and c.get("type") == "S3Reachable" and c.get("status") == "False"}
    for c in new["conditions"]:
        before = old_conds.get(c["type"])
        if before is not None and before.get("status") == c["status"]:
            continue
        if c["type"] == "Stalled" and {c["reason"], (before or {}).get("reason")} & s3_reasons:
            continue  # an outage: the S3Reachable event tells it, once per app is enough
        bad = _bad(c)
        # News: trouble, the end of trouble, and the application's go/stop. A good condition
        # that just follows the phase (Ready, Reconciling, VRGHealthy settling) is in the
        # PhaseChanged event already; at a thousand apps per action, one Event each costs.
        if not (bad or (before is not None and _bad(before)) or c["type"] == "ReadyForApplication"):
            continue
        events.append(Event("Warning" if bad else "Normal", c["reason"],
                            f"{c['type']}={c['status']}: {c['message']}"))
    if new.get("phase") != previous.get("phase") and new.get("phase"):
        phase = f"phase {previous.get('phase') or '(none)'} -> {new['phase']}"
        if events:
            events[0] = replace(events[0], message=f"{events[0].message} ({phase})")
        else:
            events.append(Event("Normal", "PhaseChanged", phase))
    return events


def _bad(c: Mapping[str, Any]) -> bool:
    if c.get("type") == "VRGHealthy" and c.get("reason") == "VRGProgressing":
        return False  # working on the spec it was just given: news only if it ends in trouble
    return (c.get("type") == "Stalled" and c.get("status") == "True") or (
        c.get("type") in ("S3Reachable", "PeerConnected", "VRGHealthy") and c.get("status") == "False")
