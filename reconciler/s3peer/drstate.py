"""dr-state decisions as pure functions: claims, transitions, the ambiguous 412, the rollback guard.

The I/O (conditional PUTs) lives in `peer.Coordinator`; everything here is
deterministic so the state machine can be table-tested without S3.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from reconciler.s3peer.models import Action, DRState

T = TypeVar("T")

STATE_ROLLBACK_REASON = "StateRollback"


@dataclass(frozen=True)
class Record(Generic[T]):
    """A decoded object with the S3 version it was read at."""

    value: T
    etag: str
    nonce: str
    writer: str
    written_at: str


@dataclass(frozen=True)
class WriteOutcome:
    """Result of a claim or transition.

    `won` is True when S3 now holds our write. `current` is what S3 holds after
    the attempt (ours when won, the winner's when lost; None only if the object
    vanished between our 412 and the re-read). `resolved_by_nonce` marks a 412
    that turned out to be our own earlier success (a retried PUT).
    """

    won: bool
    current: Record[DRState] | None
    resolved_by_nonce: bool = False


@dataclass(frozen=True)
class SeenState:
    """What a cluster remembers (in DRControl status) about the highest dr-state it has acted on."""

    generation: int
    primary: str


class RollbackKind(StrEnum):
    LOWER_GENERATION = "LowerGeneration"
    PRIMARY_CHANGED = "PrimaryChanged"
    MISSING = "Missing"


@dataclass(frozen=True)
class Rollback:
    kind: RollbackKind
    message: str
    reason: str = STATE_ROLLBACK_REASON


def check_rollback(seen: SeenState | None, current: DRState | None) -> Rollback | None:
    """The rollback guard: None when `current` may be acted on.

    A lower generation, the same generation with another primary, or no dr-state
    at all after having seen one (a deleted or restored-from-backup object) are
    rollbacks: the caller stops acting and reports Stalled/StateRollback.
    """
    if seen is None:
        return None
    if current is None:
        return Rollback(RollbackKind.MISSING, f"dr-state is gone but generation {seen.generation} was seen")
    if current.generation < seen.generation:
        return Rollback(
            RollbackKind.LOWER_GENERATION,
            f"dr-state generation {current.generation} is below the {seen.generation} already seen",
        )
    if current.generation == seen.generation and current.primary != seen.primary:
        return Rollback(
            RollbackKind.PRIMARY_CHANGED,
            f"dr-state generation {current.generation} names {current.primary}, it named {seen.primary} before",
        )
    return None


def remember(seen: SeenState | None, current: DRState) -> SeenState:
    """The new highest-seen value, to store in status once `current` passed the guard."""
    if seen is not None and check_rollback(seen, current) is not None:
        return seen
    return SeenState(generation=current.generation, primary=current.primary)


def initial_state(cluster: str, changed_at: str) -> DRState:
    return DRState(
        primary=cluster,
        generation=1,
        action=Action.INITIAL,
        previous_primary=None,
        intent_nonce=None,
        changed_at=changed_at,
    )


def next_state(current: DRState, *, new_primary: str, action: Action, intent_nonce: str | None,
               changed_at: str, reclaim: bool = False) -> DRState:
    """The dr-state a transition writes. Raises ValueError for what is not a transition.

    `reclaim` takes the next generation for the cluster that is already Primary: after it
    released its generation for a relocate, only a new generation can move it back, so that
    the relocate target's late CAS on the released generation fails.
    """
    if action == Action.INITIAL:
        raise ValueError("Initial is only the first claim, never a transition")
    if new_primary == current.primary and not reclaim:
        # Asking for the cluster that is already Primary is a no-op for the caller to report.
        raise ValueError(f"{new_primary} is already Primary at generation {current.generation}")
    return DRState(
        primary=new_primary,
        generation=current.generation + 1,
        action=action,
        previous_primary=current.primary,
        intent_nonce=intent_nonce,
        changed_at=changed_at,
    )


def resolve_precondition_failed(our_nonce: str, reread: Record[DRState] | None) -> WriteOutcome:
    """After a 412: if the stored nonce is ours, the PUT did succeed (a retried request)."""
    if reread is not None and reread.nonce == our_nonce:
        return WriteOutcome(won=True, current=reread, resolved_by_nonce=True)
    return WriteOutcome(won=False, current=reread)
