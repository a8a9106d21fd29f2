"""dr-state over three coordination stores (reconciler/s3peer/quorum.py), on in-memory S3 buckets.

The buckets answer like S3 (tests/sim/mems3.py: atomic conditional writes, 412, 304) and take
the same faults as the simulation: outages, lost requests, writes applied but answered with a
timeout, ambiguous conditional writes. The chaos test interleaves two proposers inside each
other's requests and kills them at random points.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable

import pytest

from reconciler.s3peer.errors import PreconditionFailed, Unreachable
from reconciler.s3peer.keys import AppKey, KeySchema
from reconciler.s3peer.models import Action
from reconciler.s3peer.quorum import QuorumDRState
from reconciler.s3peer.store import ObjectStore
from tests.sim.mems3 import MemBucket, MemS3Client

APP = AppKey("shop", "cart")
KEY = KeySchema().dr_state_acceptor(APP)


def _nothing() -> None:
    return None


class Sites:
    """Three buckets (east, west, witness) and one client per (cluster, bucket)."""

    def __init__(self, n: int = 3) -> None:
        self.buckets = [MemBucket() for _ in range(n)]
        self.hook: Callable[[str, str], None] = lambda cluster, label: None
        self.clients: dict[str, list[MemS3Client]] = {}

    def register(self, cluster: str) -> QuorumDRState:
        def io(label: str) -> Callable[[], None]:
            self.hook(cluster, label)
            return _nothing
        clients = [MemS3Client(b, cluster, io, []) for b in self.buckets]
        self.clients[cluster] = clients
        return QuorumDRState([ObjectStore(c, "coordination") for c in clients], cluster,
                             names=[f"site-{i}" for i in range(len(clients))])


def test_a_claim_is_chosen_on_every_store_and_read_back() -> None:
    sites = Sites()
    east = sites.register("east")
    out = east.claim_initial(APP)
    assert out.won and out.current is not None and out.current.value.primary == "east"
    assert all(KEY in b.objects for b in sites.buckets)
    west = sites.register("west")
    rec = west.read_dr_state(APP)
    assert rec is not None and rec.value.generation == 1 and rec.value.primary == "east"
    assert not west.claim_initial(APP).won


def test_a_transition_on_a_stale_read_loses_and_returns_the_winner() -> None:
    sites = Sites()
    east, west = sites.register("east"), sites.register("west")
    east.claim_initial(APP)
    seen = west.read_dr_state(APP)
    assert seen is not None
    first = west.transition(APP, seen, Action.FAILOVER)
    assert first.won and first.current is not None and first.current.value.generation == 2
    stale = east.transition(APP, seen, Action.FAILOVER, reclaim=True)
    assert not stale.won
    assert stale.current is not None and stale.current.value.primary == "west"


def test_failover_works_with_one_store_lost_and_freezes_with_two() -> None:
    sites = Sites()
    east, west = sites.register("east"), sites.register("west")
    east.claim_initial(APP)
    for c in sites.clients["west"][:1]:
        c.faults.down = True  # east's site is gone with its bucket
    seen = west.read_dr_state(APP)
    assert seen is not None
    assert west.transition(APP, seen, Action.FAILOVER).won
    rec = west.read_dr_state(APP)
    assert rec is not None and rec.value.primary == "west"
    (lost,) = west.stores_unreachable()
    assert lost.startswith("site-0 (")
    # What one thread's read found is not what another thread's read reports.
    other: list[list[str]] = []
    worker = threading.Thread(target=lambda: other.append(west.stores_unreachable()))
    worker.start()
    worker.join()
    assert other == [[]]
    sites.clients["west"][1].faults.down = True
    with pytest.raises(Unreachable, match="1 of 3 coordination stores answered, a majority of 2 is needed "
                                          r"\(site-0: .*; site-1: "):
        west.read_dr_state(APP)
    with pytest.raises(Unreachable):
        west.transition(APP, rec, Action.FAILOVER, reclaim=True)


def test_the_returning_cluster_reads_the_generation_taken_without_it() -> None:
    sites = Sites()
    east, west = sites.register("east"), sites.register("west")
    east.claim_initial(APP)
    first = east.read_dr_state(APP)
    assert first is not None
    for c in sites.clients["west"][:1]:
        c.faults.down = True
    seen = west.read_dr_state(APP)
    assert seen is not None and west.transition(APP, seen, Action.FAILOVER).won
    # East comes back; its own bucket (index 0) missed the failover.
    rec = east.read_dr_state(APP)
    assert rec is not None and rec.value.generation == 2 and rec.value.primary == "west"
    assert not east.transition(APP, first, Action.FAILOVER, reclaim=True).won


def test_ambiguous_and_timed_out_writes_do_not_change_the_outcome() -> None:
    sites = Sites()
    east = sites.register("east")
    for c in sites.clients["east"]:
        c.faults.ambiguous_next_cas = True
    assert east.claim_initial(APP).won
    rec = east.read_dr_state(APP)
    assert rec is not None
    sites.clients["east"][0].faults.timeout_next_write = True
    sites.clients["east"][1].faults.lose_next = True
    out = east.transition(APP, rec, Action.FAILOVER, reclaim=True)
    assert out.won
    again = east.read_dr_state(APP)
    assert again is not None and again.value.generation == 2


def test_a_write_cut_short_is_finished_or_superseded_by_the_next_reader() -> None:
    sites = Sites()
    east, west = sites.register("east"), sites.register("west")
    east.claim_initial(APP)
    seen = west.read_dr_state(APP)
    assert seen is not None
    puts = {"n": 0}

    class Killed(Exception):
        pass

    def kill_after_first_accept(cluster: str, label: str) -> None:
        if cluster == "west" and label.startswith("s3 PUT"):
            puts["n"] += 1
            if puts["n"] == 4:  # 3 promises, then the first accept
                raise Killed
    sites.hook = kill_after_first_accept
    with pytest.raises(Killed):
        west.transition(APP, seen, Action.FAILOVER)
    sites.hook = lambda cluster, label: None
    one = east.read_dr_state(APP)
    two = sites.register("west").read_dr_state(APP)
    assert one is not None and two is not None
    assert (one.value, one.nonce) == (two.value, two.nonce)
    assert one.value.generation in (1, 2)


def test_removal_is_a_tombstone_and_a_new_claim_starts_again() -> None:
    sites = Sites()
    east = sites.register("east")
    east.claim_initial(APP)
    rec = east.read_dr_state(APP)
    assert rec is not None
    east.delete_dr_state(APP, rec)
    assert east.read_dr_state(APP) is None
    assert all(KEY in b.objects for b in sites.buckets), "acceptors are never deleted"
    with pytest.raises(PreconditionFailed):
        east.delete_dr_state(APP, rec)
    assert sites.register("west").claim_initial(APP).won


def test_an_even_number_of_stores_is_refused() -> None:
    sites = Sites(2)
    with pytest.raises(ValueError, match="odd number"):
        sites.register("east")


def test_a_corrupt_acceptor_counts_as_a_store_that_does_not_answer() -> None:
    sites = Sites()
    east = sites.register("east")
    east.claim_initial(APP)
    sites.buckets[2].put(KEY, b'{"apiVersion": "nope"}', "tamper")
    west = sites.register("west")
    rec = west.read_dr_state(APP)
    assert rec is not None and rec.value.primary == "east"
    sites.buckets[1].put(KEY, b"garbage", "tamper")
    with pytest.raises(Unreachable, match="corrupt acceptor object"):
        sites.register("west").read_dr_state(APP)


def chaos_run(seed: int, majority: int | None = None) -> list[str]:
    """Two clusters transition back and forth; each request may run the other's whole operation
    first, fail, or kill the caller. Returns what broke linearizability (nothing, if correct).
    `majority` overrides the quorum size: a mutant the run must catch."""
    from reconciler.s3peer.drstate import Record

    rng = random.Random(seed)
    sites = Sites()
    problems: list[str] = []

    def register(cluster: str) -> QuorumDRState:
        q = sites.register(cluster)
        if majority is not None:
            q.majority = majority
        return q

    procs = {"east": register("east"), "west": register("west")}
    chosen: dict[int, set[tuple[str, str]]] = {}
    completed_max = {"gen": 0}
    depth = {"n": 0}

    class Killed(Exception):
        pass

    def note(rec: object, started_after: int) -> None:
        if isinstance(rec, Record):
            chosen.setdefault(rec.value.generation, set()).add((rec.value.primary, rec.nonce))
            if rec.value.generation < started_after:
                problems.append(f"a read returned generation {rec.value.generation} after {started_after} was seen")
            completed_max["gen"] = max(completed_max["gen"], rec.value.generation)

    def operation(cluster: str) -> None:
        q = procs[cluster]
        started_after = completed_max["gen"]
        try:
            cur = q.read_dr_state(APP)
            note(cur, started_after)
            if cur is None:
                out = q.claim_initial(APP)
            else:
                out = q.transition(APP, cur, Action.FAILOVER, reclaim=cur.value.primary == cluster)
            note(out.current, started_after)
            if out.won and cur is not None and out.current is not None \
                    and out.current.value.generation != cur.value.generation + 1:
                problems.append(f"a transition from {cur.value.generation} won {out.current.value.generation}")
        except Unreachable:
            pass
        except Killed:
            procs[cluster] = register(cluster)  # restarted: nothing in memory survives

    def chaos(cluster: str, label: str) -> None:
        r = rng.random()
        if r < 0.04:
            raise Killed
        if r < 0.10 and depth["n"] < 2:
            depth["n"] += 1
            try:
                operation("west" if cluster == "east" else "east")
            finally:
                depth["n"] -= 1
        elif r < 0.16:
            c = sites.clients[cluster][rng.randrange(3)]
            setattr(c.faults, rng.choice(["lose_next", "timeout_next_write", "ambiguous_next_cas"]), True)

    sites.hook = chaos
    for _ in range(40):
        operation(rng.choice(["east", "west"]))
    sites.hook = lambda cluster, label: None
    for clients in sites.clients.values():
        for client in clients:
            client.faults = type(client.faults)()
    final = procs["east"].read_dr_state(APP)
    note(final, 0)
    problems += [f"generation {g} has two values: {v}" for g, v in chosen.items() if len(v) > 1]
    if chosen and (final is None or final.value.generation != max(chosen)):
        problems.append(f"the final read is {final}, not generation {max(chosen)}")
    return problems


@pytest.mark.parametrize("seed", range(int(os.environ.get("QUORUM_CHAOS_SEEDS", "60"))))
def test_interleaved_proposers_with_crashes_never_choose_two_values_for_a_generation(seed: int) -> None:
    assert chaos_run(seed) == []


def test_the_chaos_run_catches_a_quorum_of_one() -> None:
    # The same runs with a minority "quorum": they must find two values for a generation.
    assert sum(1 for seed in range(40) if chaos_run(seed, majority=1)) >= 10
