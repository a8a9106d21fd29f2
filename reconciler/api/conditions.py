"""Conditions in the metav1.Condition shape, their vocabulary, and pure helpers to maintain them.

The helpers never read a clock: the caller passes `now`, so planners stay pure and testable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from reconciler.api.common import Fields, ModelError, emit, format_time, parse_time, time_field

TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"
STATUSES: Final = (TRUE, FALSE, UNKNOWN)

# metav1.Condition requires a reason in CamelCase-ish form; the CRDs enforce the same pattern.
REASON_PATTERN: Final = r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?"


class ConditionType:
    """Condition types on our objects."""

    # kstatus: lets `kubectl wait`, Flux and Argo CD judge health without custom code.
    READY: Final = "Ready"
    RECONCILING: Final = "Reconciling"
    STALLED: Final = "Stalled"
    # DRControl
    PEER_CONNECTED: Final = "PeerConnected"
    VRG_HEALTHY: Final = "VRGHealthy"
    READY_FOR_APPLICATION: Final = "ReadyForApplication"
    # DRPolicy and DRCluster
    VALIDATED: Final = "Validated"
    S3_REACHABLE: Final = "S3Reachable"
    FENCED: Final = "Fenced"


class Reason:
    """Reasons used with the condition types above (CamelCase, as metav1.Condition requires)."""

    # generic
    RECONCILED: Final = "Reconciled"
    PROGRESSING: Final = "Progressing"
    INVALID_SPEC: Final = "InvalidSpec"
    # peer and S3
    PEER_HEARTBEAT_CURRENT: Final = "PeerHeartbeatCurrent"
    PEER_STALE: Final = "PeerStale"
    PEER_UNKNOWN: Final = "PeerUnknown"
    S3_REACHABLE: Final = "S3Reachable"
    S3_UNREACHABLE: Final = "S3Unreachable"
    S3_CORRUPT_OBJECT: Final = "S3CorruptObject"
    CONDITIONAL_WRITES_UNSUPPORTED: Final = "ConditionalWritesUnsupported"
    STATE_ROLLBACK: Final = "StateRollback"
    # data and roles
    DATA_READY: Final = "DataReady"
    DATA_NOT_READY: Final = "DataNotReady"
    NOT_PRIMARY: Final = "NotPrimary"
    VRG_NOT_FOUND: Final = "VRGNotFound"
    VRG_HEALTHY: Final = "VRGHealthy"
    VRG_DEGRADED: Final = "VRGDegraded"
    WAITING_FOR_INITIAL_CLAIM: Final = "WaitingForInitialClaim"
    WAITING_FOR_PEER: Final = "WaitingForPeer"
    WAITING_FOR_FENCE: Final = "WaitingForFence"
    FINAL_SYNC_IN_PROGRESS: Final = "FinalSyncInProgress"
    FAILING_OVER: Final = "FailingOver"
    RELOCATING: Final = "Relocating"
    # configuration
    POLICY_NOT_FOUND: Final = "PolicyNotFound"
    CLUSTER_NOT_FOUND: Final = "ClusterNotFound"
    NOT_IN_POLICY: Final = "NotInPolicy"
    FENCE_SUCCEEDED: Final = "FenceSucceeded"
    FENCE_FAILED: Final = "FenceFailed"


@dataclass
class Condition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> Condition:
        f = Fields(d, path)
        ltt = time_field(f, "lastTransitionTime")
        if ltt is None:
            raise ModelError(f.at("lastTransitionTime"), "is required")
        message = f.string("message")
        if message is None:
            raise ModelError(f.at("message"), "is required")
        return cls(
            type=f.req_string("type"),
            status=f.req_string("status", choices=STATUSES),
            reason=f.req_string("reason", pattern=REASON_PATTERN),
            message=message,
            last_transition_time=ltt,
            observed_generation=f.integer("observedGeneration", minimum=0),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            {},
            type=self.type,
            status=self.status,
            observedGeneration=self.observed_generation,
            lastTransitionTime=self.last_transition_time,
            reason=self.reason,
            message=self.message,
        )

    @property
    def is_true(self) -> bool:
        return self.status == TRUE


def parse_conditions(f: Fields, key: str = "conditions") -> list[Condition]:
    """Conditions of a status; absent and empty are the same (to_dict omits an empty list)."""
    return f.items(key, Condition.from_dict) or []


def emit_conditions(conditions: Sequence[Condition]) -> list[dict[str, Any]] | None:
    return [c.to_dict() for c in conditions] or None


def get_condition(conditions: Sequence[Condition], cond_type: str) -> Condition | None:
    return next((c for c in conditions if c.type == cond_type), None)


def is_condition_true(conditions: Sequence[Condition], cond_type: str, generation: int | None = None) -> bool:
    """True when the condition is True and, if a generation is given, was observed at that generation."""
    c = get_condition(conditions, cond_type)
    if c is None or c.status != TRUE:
        return False
    return generation is None or c.observed_generation == generation


MAX_MESSAGE = 4096


def _after(previous: str, now: datetime) -> str:
    """`now`, or one second after `previous` when `now` is not later (times have second precision)."""
    try:
        floor = parse_time(previous) + timedelta(seconds=1)
    except ValueError:
        return format_time(now)
    return format_time(max(now, floor))


def set_condition(
    conditions: Sequence[Condition],
    cond_type: str,
    status: bool | str,
    reason: str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return a new list with the condition set (meta.SetStatusCondition semantics).

    lastTransitionTime moves to `now` only when the status changes, so watchers see when a
    condition last flipped, not when it was last recomputed. Order of the other conditions is kept.
    A flip within the second of the previous one moves it one second on: the times of one condition
    strictly increase, so a value naming one transition (the stop acknowledgement names a withdrawal
    of ReadyForApplication by its time) never also names a later one.
    """
    # The CRDs cap messages at 32768 characters; a longer one (e.g. quoting a hostile S3 value) would
    # make every status write fail with 422. Messages are for people: the start says what matters.
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 3] + "..."
    status_str = (TRUE if status else FALSE) if isinstance(status, bool) else status
    if status_str not in STATUSES:
        raise ValueError(f"condition status must be one of {', '.join(STATUSES)}, got {status_str!r}")
    if not re.fullmatch(REASON_PATTERN, reason):
        raise ValueError(f"condition reason must be CamelCase, got {reason!r}")
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type != cond_type:
            out.append(c)
            continue
        found = True
        ltt = c.last_transition_time if c.status == status_str else _after(c.last_transition_time, now)
        out.append(
            replace(
                c,
                status=status_str,
                reason=reason,
                message=message,
                last_transition_time=ltt,
                observed_generation=observed_generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=cond_type,
                status=status_str,
                reason=reason,
                message=message,
                last_transition_time=format_time(now),
                observed_generation=observed_generation,
            )
        )
    return out


def remove_condition(conditions: Sequence[Condition], cond_type: str) -> list[Condition]:
    return [c for c in conditions if c.type != cond_type]
