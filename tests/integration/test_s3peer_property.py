"""Property-based: random operation sequences from two clusters against the real server keep I1.

I1: for every generation there is exactly one Primary, and generations seen by
any cluster never decrease.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.s3peer import (
    Action,
    AppKey,
    Coordinator,
    DRState,
    KeySchema,
    ObjectStore,
    Record,
    SeenState,
    WriteOutcome,
    check_rollback,
    remember,
)

pytestmark = pytest.mark.realenv
CLUSTERS = ("east", "west")
_app_ids = itertools.count()

cluster = st.sampled_from(CLUSTERS)
op = st.one_of(
    st.tuples(st.just("claim"), cluster),
    st.tuples(st.just("read"), cluster),
    st.tuples(st.just("transition"), cluster, st.sampled_from([Action.FAILOVER, Action.RELOCATE])),
    st.tuples(st.just("retry"), cluster),  # the last write again with the same nonce: an ambiguous 412
    st.tuples(st.just("race"), st.sampled_from([Action.FAILOVER, Action.RELOCATE])),
)


@dataclass
class View:
    """What one cluster knows: its last read (possibly stale) and the highest state it has seen."""

    last: Record[DRState] | None = None
    seen: SeenState | None = None
    observed: list[int] = field(default_factory=list)
    last_write: tuple[str, str] | None = None  # (kind, nonce)
    last_base: Record[DRState] | None = None


@dataclass
class World:
    primaries: dict[int, set[str]] = field(default_factory=dict)
    wins: int = 0

    def observe(self, view: View, rec: Record[DRState] | None) -> None:
        if rec is None:
            return
        s = rec.value
        self.primaries.setdefault(s.generation, set()).add(s.primary)
        # A cluster that acts only on what passes the rollback guard never goes backwards.
        assert check_rollback(view.seen, s) is None, f"rollback: saw {view.seen}, now {s}"
        view.seen = remember(view.seen, s)
        view.observed.append(s.generation)
        view.last = rec


@pytest.fixture(scope="module")
def stores(s3_settings: dict[str, str]) -> dict[str, ObjectStore]:
    return {c: ObjectStore.from_settings(s3_settings) for c in CLUSTERS}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=14))
def test_two_clusters_keep_invariant_i1(ops: list[tuple[object, ...]], stores: dict[str, ObjectStore],
                                        key_prefix: str) -> None:
    app = AppKey("prop", f"app-{next(_app_ids)}")
    coords = {c: Coordinator(stores[c], c, keys=KeySchema(key_prefix)) for c in CLUSTERS}
    views = {c: View() for c in CLUSTERS}
    world = World()

    lock = threading.Lock()

    def record(c: str, out: WriteOutcome, kind: str, nonce: str, base: Record[DRState] | None) -> None:
        with lock:
            if out.won and not out.resolved_by_nonce:
                world.wins += 1
            views[c].last_write, views[c].last_base = (kind, nonce), base
            world.observe(views[c], out.current)

    def transition(c: str, action: Action) -> None:
        v = views[c]
        if v.last is None or v.last.value.primary == c:
            return
        nonce = f"{c}-{next(_app_ids)}"
        out = coords[c].transition(app, v.last, action, nonce=nonce)
        if out.won:
            assert out.current is not None and out.current.value.generation == v.last.value.generation + 1
        record(c, out, "transition", nonce, v.last)

    for step in ops:
        name = step[0]
        if name == "claim":
            c = str(step[1])
            nonce = f"{c}-{next(_app_ids)}"
            record(c, coords[c].claim_initial(app, nonce=nonce), "claim", nonce, None)
        elif name == "read":
            c = str(step[1])
            world.observe(views[c], coords[c].read_dr_state(app))
        elif name == "transition":
            transition(str(step[1]), step[2])  # type: ignore[arg-type]
        elif name == "retry":
            c = str(step[1])
            lw = views[c].last_write
            if lw is None:
                continue
            kind, nonce = lw
            base = views[c].last_base
            if kind == "claim":
                out = coords[c].claim_initial(app, nonce=nonce)
            elif base is not None:
                out = coords[c].transition(app, base, Action.FAILOVER, nonce=nonce)
            else:
                continue
            # A retried write is never a second win: it resolves to the first one or loses.
            assert not (out.won and not out.resolved_by_nonce)
            world.observe(views[c], out.current)
        elif name == "race":
            errors: list[BaseException] = []

            def run(c: str, action: Action, errors: list[BaseException] = errors) -> None:
                try:
                    transition(c, action)
                except BaseException as e:  # re-raised below: a thread must not swallow a failure
                    errors.append(e)

            threads = [threading.Thread(target=run, args=(c, step[1])) for c in CLUSTERS]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]

    for c in CLUSTERS:
        world.observe(views[c], coords[c].read_dr_state(app))
    # I1, part one: exactly one primary per generation, across everything either cluster saw.
    for gen, prim in world.primaries.items():
        assert len(prim) == 1, f"generation {gen} has primaries {prim}"
    # I1, part two: the generations each cluster saw never decrease.
    for c in CLUSTERS:
        obs = views[c].observed
        assert obs == sorted(obs), f"{c} saw generations {obs}"
    # Every generation was produced by exactly one winning write, with no gaps.
    final = views["east"].last
    assert final is None or world.wins == final.value.generation
    if final is not None:
        assert set(world.primaries) == set(range(1, final.value.generation + 1))
