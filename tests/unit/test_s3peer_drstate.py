"""dr-state decisions as pure functions: transitions, ambiguous-412 resolution, rollback guard."""

from __future__ import annotations

import pytest

from reconciler.s3peer import (
    Action,
    CorruptObject,
    DRIntent,
    DRState,
    Record,
    RollbackKind,
    SeenState,
    check_rollback,
    initial_state,
    next_state,
    remember,
    resolve_precondition_failed,
)

T = "2026-11-25T12:00:00Z"


def _state(primary: str, gen: int) -> DRState:
    if gen == 1:
        return initial_state(primary, T)
    return DRState(primary, gen, Action.FAILOVER, "other", None, T)


def test_initial_state_is_generation_one_for_the_claimant() -> None:
    s = initial_state("east", T)
    assert (s.primary, s.generation, s.action, s.previous_primary) == ("east", 1, Action.INITIAL, None)


def test_next_state_increments_generation_and_records_previous_primary() -> None:
    s = next_state(initial_state("east", T), new_primary="west", action=Action.FAILOVER, intent_nonce="n",
                   changed_at=T)
    assert (s.primary, s.generation, s.action, s.previous_primary, s.intent_nonce) == (
        "west", 2, Action.FAILOVER, "east", "n")


def test_transition_to_current_primary_is_refused() -> None:
    with pytest.raises(ValueError, match="already Primary"):
        next_state(initial_state("east", T), new_primary="east", action=Action.RELOCATE, intent_nonce=None,
                   changed_at=T)


def test_reclaim_takes_the_next_generation_for_the_current_primary() -> None:
    s = next_state(initial_state("east", T), new_primary="east", action=Action.FAILOVER, intent_nonce=None,
                   changed_at=T, reclaim=True)
    assert (s.primary, s.generation, s.previous_primary) == ("east", 2, "east")


def test_initial_is_never_a_transition() -> None:
    with pytest.raises(ValueError):
        next_state(initial_state("east", T), new_primary="west", action=Action.INITIAL, intent_nonce=None,
                   changed_at=T)


def test_dr_state_body_round_trip() -> None:
    s = DRState("west", 4, Action.RELOCATE, "east", "n-1", T)
    assert DRState.from_body(s.to_body()) == s


@pytest.mark.parametrize(
    "patch",
    [{"generation": 0}, {"generation": "2"}, {"generation": True}, {"primary": ""}, {"action": "Explode"},
     {"action": "Initial"}, {"previousPrimary": 3}, {"changedAt": None}],
)
def test_invalid_dr_state_bodies_are_corrupt(patch: dict[str, object]) -> None:
    body = DRState("west", 2, Action.FAILOVER, "east", None, T).to_body()
    body.update(patch)
    with pytest.raises(CorruptObject):
        DRState.from_body(body)


def test_generation_one_must_be_initial() -> None:
    body = initial_state("east", T).to_body()
    body["action"] = "Failover"
    with pytest.raises(CorruptObject):
        DRState.from_body(body)


def test_intent_is_live_only_at_its_base_generation() -> None:
    i = DRIntent(Action.FAILOVER, "west", base_generation=3, spec_generation=7, requested_at=T)
    assert i.is_live(3)
    assert not i.is_live(4)
    assert DRIntent.from_body(i.to_body()) == i


# -- rollback guard ----------------------------------------------------------
def test_nothing_seen_is_never_a_rollback() -> None:
    assert check_rollback(None, None) is None
    assert check_rollback(None, _state("east", 5)) is None


def test_same_or_higher_generation_is_fine() -> None:
    seen = SeenState(3, "east")
    assert check_rollback(seen, _state("east", 3)) is None
    assert check_rollback(seen, _state("west", 4)) is None
    assert check_rollback(seen, _state("east", 9)) is None


def test_lower_generation_is_a_rollback() -> None:
    r = check_rollback(SeenState(3, "east"), _state("east", 2))
    assert r is not None and r.kind == RollbackKind.LOWER_GENERATION and r.reason == "StateRollback"


def test_same_generation_other_primary_is_a_rollback() -> None:
    r = check_rollback(SeenState(3, "east"), _state("west", 3))
    assert r is not None and r.kind == RollbackKind.PRIMARY_CHANGED


def test_missing_dr_state_after_one_was_seen_is_a_rollback() -> None:
    r = check_rollback(SeenState(1, "east"), None)
    assert r is not None and r.kind == RollbackKind.MISSING


def test_remember_only_moves_forward() -> None:
    seen = remember(None, _state("east", 2))
    assert seen == SeenState(2, "east")
    assert remember(seen, _state("west", 3)) == SeenState(3, "west")
    assert remember(SeenState(3, "west"), _state("east", 2)) == SeenState(3, "west")


# -- ambiguous 412 -----------------------------------------------------------
def _rec(nonce: str) -> Record[DRState]:
    return Record(value=initial_state("east", T), etag='"e"', nonce=nonce, writer="east", written_at=T)


def test_412_with_our_nonce_stored_is_a_win() -> None:
    out = resolve_precondition_failed("mine", _rec("mine"))
    assert out.won and out.resolved_by_nonce and out.current is not None


def test_412_with_another_nonce_is_a_loss() -> None:
    out = resolve_precondition_failed("mine", _rec("theirs"))
    assert not out.won and out.current is not None and out.current.nonce == "theirs"


def test_412_with_the_object_gone_is_a_loss() -> None:
    out = resolve_precondition_failed("mine", None)
    assert not out.won and out.current is None
