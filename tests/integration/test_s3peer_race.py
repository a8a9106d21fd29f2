"""Racing claimants against the real S3 server: exactly one winner, every time."""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.s3peer import Action, AppKey, Coordinator, KeySchema, ObjectStore, Record, WriteOutcome

pytestmark = pytest.mark.realenv
CONTENDERS = 6
ROUNDS = 15


def _race_threads(n: int, attempt: Callable[[int], WriteOutcome]) -> list[WriteOutcome]:
    barrier = threading.Barrier(n)
    results: list[WriteOutcome | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = attempt(i)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [r for r in results if r is not None]


def test_threads_racing_initial_claims_have_exactly_one_winner(s3_settings: dict[str, str], key_prefix: str) -> None:
    keys = KeySchema(key_prefix)
    # One client per contender, as separate operators would have.
    coords = [Coordinator(ObjectStore.from_settings(s3_settings), f"c{i}", keys=keys) for i in range(CONTENDERS)]
    for r in range(ROUNDS):
        app = AppKey("race", f"app-{r}")
        outcomes = _race_threads(CONTENDERS, lambda i, app=app: coords[i].claim_initial(app))  # type: ignore[misc]
        winners = [i for i, o in enumerate(outcomes) if o.won]
        assert len(winners) == 1, f"round {r}: winners {winners}"
        stored = coords[0].read_dr_state(app)
        assert stored is not None and stored.value.primary == f"c{winners[0]}" and stored.value.generation == 1
        # Every loser was told who won.
        for o in outcomes:
            assert o.current is not None and o.current.value.primary == f"c{winners[0]}"


def test_threads_racing_transitions_from_the_same_version_have_exactly_one_winner(
        s3_settings: dict[str, str], key_prefix: str) -> None:
    keys = KeySchema(key_prefix)
    coords = [Coordinator(ObjectStore.from_settings(s3_settings), f"c{i}", keys=keys) for i in range(CONTENDERS + 1)]
    for r in range(ROUNDS):
        app = AppKey("race", f"t-{r}")
        base = coords[CONTENDERS].claim_initial(app).current
        assert base is not None

        def attempt(i: int, app: AppKey = app, base: Record[Any] = base) -> WriteOutcome:
            return coords[i].transition(app, base, Action.FAILOVER)

        outcomes = _race_threads(CONTENDERS, attempt)
        winners = [i for i, o in enumerate(outcomes) if o.won]
        assert len(winners) == 1, f"round {r}: winners {winners}"
        stored = coords[0].read_dr_state(app)
        assert stored is not None
        assert (stored.value.primary, stored.value.generation) == (f"c{winners[0]}", 2)


def _process_contender(settings: dict[str, str], prefix: str, name: str, rounds: int,
                       barrier: Any, out: Any) -> None:
    me = Coordinator(ObjectStore.from_settings(settings), name, keys=KeySchema(prefix))
    for r in range(rounds):
        app = AppKey("race", f"proc-{r}")
        barrier.wait()
        claim = me.claim_initial(app)
        barrier.wait()
        # Round two: everyone races a transition from the generation-1 version.
        base = me.read_dr_state(app)
        barrier.wait()
        trans = me.transition(app, base, Action.FAILOVER) if base and base.value.primary != name else None
        out.put((r, name, claim.won, trans.won if trans else None))


def test_processes_racing_have_exactly_one_winner_per_round(s3_settings: dict[str, str], key_prefix: str) -> None:
    ctx = mp.get_context("spawn")  # a fresh interpreter per contender, like separate operators
    n, rounds = 4, 8
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_contender, args=(s3_settings, key_prefix, f"p{i}", rounds, barrier, out))
             for i in range(n)]
    for p in procs:
        p.start()
    rows = [out.get(timeout=120) for _ in range(n * rounds)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    reader = Coordinator(ObjectStore.from_settings(s3_settings), "reader", keys=KeySchema(key_prefix))
    for r in range(rounds):
        mine = [row for row in rows if row[0] == r]
        claim_winners = [name for _, name, won, _ in mine if won]
        assert len(claim_winners) == 1, f"round {r}: claim winners {claim_winners}"
        trans_winners = [name for _, name, _, won in mine if won]
        assert len(trans_winners) == 1, f"round {r}: transition winners {trans_winners}"
        stored = reader.read_dr_state(AppKey("race", f"proc-{r}"))
        assert stored is not None
        assert (stored.value.primary, stored.value.generation, stored.value.previous_primary) == (
            trans_winners[0], 2, claim_winners[0])
