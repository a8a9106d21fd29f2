"""dr-state as a linearizable register over 2f+1 coordination stores (CASPaxos, Rystsov 2018).

With one bucket, dr-state lives where it may die: if the bucket is in the failed site, the
survivor can never take the next generation. With N = 2f+1 stores (a bucket per site and a
small witness bucket in a third place), any f of them may be lost. Each store holds one
*acceptor* object per app (`{ns}/{vrg}/dr-state-acceptor`), updated only by conditional
writes, holding the highest ballot it promised and the last (ballot, value) it accepted. A
*proposer* (the cluster that wants to change dr-state) runs two rounds on the stores:

1. **prepare**: a ballot higher than any it has seen; each acceptor that promised nothing
   higher records the promise (If-Match on the version read) and answers with what it has
   accepted. A majority of promises is needed.
2. **accept**: the proposer applies its change to the value with the highest accepted ballot
   among the answers (a compare-and-swap: the change is refused when that value is not the
   version the caller read) and asks every store to accept (ballot, new value); an acceptor
   accepts unless it promised a higher ballot. A majority of accepts chooses the value.

A value is identified by the nonce of the write that produced it, so the version a caller
read (`Record.etag`) survives being carried to a higher ballot. Ballots carry a random id,
so two processes never share one: after an ambiguous conditional write (applied, then a
412 on the SDK's retry) an acceptor showing our own ballot means our write landed.

**Reads** are cheap when nothing changes: one conditional GET per store (304s), and a value
is returned when a majority of acceptors hold the same accepted (ballot, nonce), which
makes it chosen. Otherwise (a write in flight, or one cut short by a crash) the reader runs
a round that re-proposes the highest accepted value unchanged, finishing or superseding the
interrupted write; only then is the value returned. A cluster that reaches fewer than a
majority of stores raises Unreachable: roles freeze (I3, generalised).

**Removal** writes a tombstone (no dr-state) through the same rounds. Acceptor objects are
never deleted: an acceptor that forgets its promise could accept a stale proposal still in
flight and choose a value older than the tombstone.

Every acceptor object is an envelope like the other objects, signed when an HMAC key is
configured. Configure one: without it, whoever can write to one store can forge an
accepted value with a higher ballot, which a round would carry to a majority.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.s3peer import envelope as env
from reconciler.s3peer.drstate import Record, WriteOutcome, initial_state, next_state
from reconciler.s3peer.envelope import Kind, req_int, req_label, req_str
from reconciler.s3peer.errors import CorruptObject, PreconditionFailed, S3PeerError, Unreachable
from reconciler.s3peer.keys import AppKey, KeySchema
from reconciler.s3peer.models import Action, DRState
from reconciler.s3peer.store import NOT_MODIFIED, ObjectStore, StoredObject

#: Conditional-write races lost in a row against one acceptor before giving up on it this round.
ACCEPTOR_RETRIES = 3
#: Rounds a proposer starts before giving up when other proposers keep outbidding it.
ROUNDS = 4
ETAG_PREFIX = "q:"


@dataclass(frozen=True, order=True)
class Ballot:
    """Totally ordered: counter first; proposer and a random id break ties and make it unique."""

    counter: int
    proposer: str
    id: str

    def to_body(self) -> dict[str, Any]:
        return {"n": self.counter, "by": self.proposer, "id": self.id}

    @classmethod
    def from_body(cls, body: Any, key: str | None) -> Ballot:
        if not isinstance(body, Mapping):
            raise CorruptObject("a ballot must be an object", key=key)
        if body.get("n") == 0:
            return ZERO
        return cls(req_int(body, "n", key, minimum=1), req_label(body, "by", key), req_str(body, "id", key))


ZERO = Ballot(0, "", "")


@dataclass(frozen=True)
class Accepted:
    """A value an acceptor accepted. `state` None: no dr-state (never claimed, or removed)."""

    ballot: Ballot
    state: DRState | None
    nonce: str  # identifies the value across ballots; "" for the empty register
    writer: str

    def record(self) -> Record[DRState] | None:
        if self.state is None:
            return None
        return Record(value=self.state, etag=ETAG_PREFIX + self.nonce, nonce=self.nonce, writer=self.writer,
                      written_at=self.state.changed_at)


EMPTY = Accepted(ZERO, None, "", "")


@dataclass(frozen=True)
class AcceptorState:
    promise: Ballot
    accepted: Accepted

    def to_body(self) -> dict[str, Any]:
        a = self.accepted
        return {"promise": self.promise.to_body(),
                "accepted": {"ballot": a.ballot.to_body(), "state": a.state.to_body() if a.state else None,
                             "nonce": a.nonce, "writer": a.writer}}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None) -> AcceptorState:
        acc = body.get("accepted")
        if not isinstance(acc, Mapping):
            raise CorruptObject("body field accepted must be an object", key=key)
        ballot = Ballot.from_body(acc.get("ballot"), key)
        raw = acc.get("state")
        if raw is not None and not isinstance(raw, Mapping):
            raise CorruptObject("accepted.state must be an object or null", key=key)
        accepted = EMPTY if ballot == ZERO else Accepted(
            ballot, DRState.from_body(raw, key) if raw is not None else None,
            req_str(acc, "nonce", key), req_label(acc, "writer", key))
        promise = Ballot.from_body(body.get("promise"), key)
        if promise < accepted.ballot:
            raise CorruptObject("promise is below the accepted ballot", key=key)
        return cls(promise, accepted)


NOTHING = AcceptorState(ZERO, EMPTY)


class Abort(Exception):
    """The change does not apply to the current value (the compare of compare-and-swap failed)."""


@dataclass
class _Slot:
    """What we last knew of one acceptor object: its ETag (None: absent) and content."""

    etag: str | None
    state: AcceptorState


class QuorumDRState:
    """dr-state of every app over `stores` (an odd number); the same calls as `peer.Coordinator`'s.

    Requests go to the stores one after another (deterministic, and a simulation can
    interleave them); a round costs about one GET-or-PUT pair per store and phase.
    """

    def __init__(self, stores: Sequence[ObjectStore], cluster: str, *, keys: KeySchema | None = None,
                 hmac_key: bytes | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 names: Sequence[str] = ()) -> None:
        if not stores or len(stores) % 2 == 0:
            raise ValueError(f"a quorum needs an odd number of coordination stores, not {len(stores)}")
        self.stores = list(stores)
        #: What conditions call each store (its s3 profile).
        self.names = list(names) if len(names) == len(stores) else [f"store {i}" for i in range(len(stores))]
        self.cluster = cluster
        self.keys = keys or KeySchema()
        self.hmac_key = hmac_key or None
        self.majority = len(stores) // 2 + 1
        self._now = now
        self._lock = threading.Lock()
        self._counter = 0  # the highest ballot counter seen
        self._slots: dict[tuple[AppKey, int], _Slot] = {}
        self._local = threading.local()

    @property
    def unreachable(self) -> dict[int, str]:
        """Per store index, why it did not answer in the calling thread's last operation."""
        found: dict[int, str] | None = getattr(self._local, "unreachable", None)
        if found is None:
            found = self._local.unreachable = {}
        return found

    def _forget_unreachable(self) -> None:
        self._local.unreachable = {}

    def stores_unreachable(self) -> list[str]:
        """The stores that did not answer in the calling thread's last operation, with why."""
        return [f"{self.names[i]} ({why})" for i, why in sorted(self.unreachable.items())]

    # -- the three calls the reconciler makes ------------------------------------------------
    def read_dr_state(self, app: AppKey) -> Record[DRState] | None:
        """The chosen dr-state; one conditional GET per store when a majority agrees."""
        return self.read_accepted(app).record()

    def read_accepted(self, app: AppKey) -> Accepted:
        """The chosen value: EMPTY (nonce "") for a register never written, a tombstone has a nonce."""
        seen = self._read_all(app)
        groups: dict[tuple[Ballot, str], int] = {}
        for st in seen.values():
            k = (st.accepted.ballot, st.accepted.nonce)
            groups[k] = groups.get(k, 0) + 1
        for (ballot, nonce), count in groups.items():
            if count >= self.majority:
                return next(st.accepted for st in seen.values()
                            if (st.accepted.ballot, st.accepted.nonce) == (ballot, nonce))
        # No majority holds one value: a write is in flight or was cut short. Finish it.
        return self._change(app, lambda cur: cur)

    def seed(self, app: AppKey, state: DRState, nonce: str) -> WriteOutcome:
        """Write a value moved from a single store into the empty register, keeping its nonce: two
        clusters moving the same value both succeed, a register already written keeps its value."""
        return self._cas(app, None, state, nonce)

    def claim_initial(self, app: AppKey, *, nonce: str | None = None) -> WriteOutcome:
        state = initial_state(self.cluster, env.format_time(self._now()))
        return self._cas(app, None, state, nonce)

    def transition(self, app: AppKey, expected: Record[DRState], action: Action, *,
                   intent_nonce: str | None = None, nonce: str | None = None, reclaim: bool = False) -> WriteOutcome:
        state = next_state(expected.value, new_primary=self.cluster, action=action, intent_nonce=intent_nonce,
                           changed_at=env.format_time(self._now()), reclaim=reclaim)
        return self._cas(app, expected, state, nonce)

    def delete_dr_state(self, app: AppKey, expected: Record[DRState]) -> None:
        """Write the tombstone if dr-state is still `expected`; PreconditionFailed otherwise."""
        out = self._cas(app, expected, None, None)
        if not out.won:
            raise PreconditionFailed("dr-state changed since it was read", key=self.keys.dr_state_acceptor(app))

    # -- compare-and-swap --------------------------------------------------------------------
    def _cas(self, app: AppKey, expected: Record[DRState] | None, state: DRState | None, nonce: str | None
             ) -> WriteOutcome:
        mine = nonce or env.new_nonce()
        want = expected.nonce if expected is not None else None
        earlier = [False]

        def change(cur: Accepted) -> Accepted:
            if cur.nonce == mine:
                earlier[0] = True
                return cur  # our earlier attempt was chosen (its outcome was unknown to us)
            if (cur.nonce if cur.state is not None else None) != want:
                raise Abort
            return Accepted(ZERO, state, mine, self.cluster)

        try:
            got = self._change(app, change)
        except Abort as lost:
            current: Accepted = lost.args[0] if lost.args else EMPTY
            return WriteOutcome(won=False, current=current.record())
        return WriteOutcome(won=True, current=got.record(), resolved_by_nonce=earlier[0])

    def _change(self, app: AppKey, change: Callable[[Accepted], Accepted]) -> Accepted:
        """One CASPaxos round (retried when outbid); the value chosen. Raises Abort or Unreachable."""
        failed_once = False
        for _ in range(ROUNDS):
            ballot = self._next_ballot()
            promised, higher = self._prepare(app, ballot)
            if len(promised) < self.majority:
                if higher is not None:
                    continue  # outbid: try again above it
                if not failed_once:
                    failed_once = True  # a lost request or a timeout: one more round
                    continue
                raise self._no_quorum(len(promised))
            current = max(promised, key=lambda a: a.ballot)
            refused = False
            try:
                new = change(current)
            except Abort:
                # The highest value a majority answered with may be a write cut short: it is
                # only known to be chosen once this round has written it again, so what the
                # caller is told it lost to can never be replaced by another value.
                refused, new = True, current
            value = Accepted(ballot, new.state, new.nonce, new.writer)
            acks, higher = self._accept(app, ballot, value)
            if acks >= self.majority:
                if refused:
                    raise Abort(value)
                return value
            if higher is None:
                if not failed_once:
                    failed_once = True
                    continue
                raise self._no_quorum(acks)
        raise Unreachable(f"dr-state kept changing under {ROUNDS} rounds: another proposer is active",
                          key=self.keys.dr_state_acceptor(app))

    def _no_quorum(self, answered: int) -> Unreachable:
        why = "; ".join(f"{self.names[i]}: {m}" for i, m in sorted(self.unreachable.items()))
        return Unreachable(f"{answered} of {len(self.stores)} coordination stores answered, a majority of "
                           f"{self.majority} is needed ({why})")

    def _next_ballot(self) -> Ballot:
        with self._lock:
            self._counter += 1
            return Ballot(self._counter, self.cluster, uuid.uuid4().hex[:12])

    def _learn(self, b: Ballot) -> None:
        with self._lock:
            self._counter = max(self._counter, b.counter)

    # -- the two phases ----------------------------------------------------------------------
    def _prepare(self, app: AppKey, ballot: Ballot) -> tuple[list[Accepted], Ballot | None]:
        promised: list[Accepted] = []
        higher: Ballot | None = None
        self._forget_unreachable()
        for i in range(len(self.stores)):
            def promise(st: AcceptorState) -> AcceptorState | Ballot:
                top = max(st.promise, st.accepted.ballot)
                if st.promise == ballot:
                    return st  # our own promise landed (a retried request)
                if top >= ballot:
                    return top
                return AcceptorState(ballot, st.accepted)
            got = self._update(app, i, promise)
            if isinstance(got, AcceptorState):
                promised.append(got.accepted)
            elif isinstance(got, Ballot):
                self._learn(got)
                higher = max(higher or got, got)
        return promised, higher

    def _accept(self, app: AppKey, ballot: Ballot, value: Accepted) -> tuple[int, Ballot | None]:
        acks = 0
        higher: Ballot | None = None
        for i in range(len(self.stores)):
            def accept(st: AcceptorState) -> AcceptorState | Ballot:
                if st.accepted.ballot == ballot and st.accepted.nonce == value.nonce:
                    return st  # our own accept landed (a retried request)
                top = max(st.promise, st.accepted.ballot)
                if top > ballot:
                    return top
                return AcceptorState(ballot, value)
            got = self._update(app, i, accept)
            if isinstance(got, AcceptorState):
                acks += 1
            elif isinstance(got, Ballot):
                self._learn(got)
                higher = max(higher or got, got)
        return acks, higher

    def _update(self, app: AppKey, i: int, step: Callable[[AcceptorState], AcceptorState | Ballot]
                ) -> AcceptorState | Ballot | None:
        """Apply `step` to acceptor `i` with conditional writes; None when the store does not answer."""
        key = self.keys.dr_state_acceptor(app)
        store = self.stores[i]
        try:
            with self._lock:
                slot = self._slots.get((app, i))
            if slot is None:
                slot = self._get(app, i)
            for _ in range(ACCEPTOR_RETRIES):
                out = step(slot.state)
                if isinstance(out, Ballot) or out == slot.state:
                    return out
                data, _ = env.encode(Kind.DR_ACCEPTOR, self.cluster, out.to_body(), now=self._now(),
                                     hmac_key=self.hmac_key)
                try:
                    etag = store.put(key, data, if_match=slot.etag, if_none_match_any=slot.etag is None)
                except PreconditionFailed:
                    slot = self._get(app, i)  # changed under us (or our own write landed): look again
                    continue
                with self._lock:
                    self._slots[(app, i)] = _Slot(etag, out)
                return out
            self.unreachable[i] = "kept changing under conditional writes"
            return None
        except CorruptObject as e:
            self.unreachable[i] = f"corrupt acceptor object: {e.message}"
            return None
        except S3PeerError as e:
            with self._lock:
                self._slots.pop((app, i), None)  # the outcome of a write may be unknown
            self.unreachable[i] = e.message
            return None

    def _get(self, app: AppKey, i: int, if_none_match: str | None = None) -> _Slot:
        key = self.keys.dr_state_acceptor(app)
        obj = self.stores[i].get(key, if_none_match=if_none_match, max_bytes=env.MAX_OBJECT_BYTES)
        if obj is NOT_MODIFIED:
            with self._lock:
                cached = self._slots.get((app, i))
            if cached is not None:
                return cached
            obj = self.stores[i].get(key, max_bytes=env.MAX_OBJECT_BYTES)
        if obj is None or obj is NOT_MODIFIED:
            slot = _Slot(None, NOTHING)
        else:
            assert isinstance(obj, StoredObject)
            e = env.decode(obj.data, key=key, expected_kind=Kind.DR_ACCEPTOR, hmac_key=self.hmac_key)
            slot = _Slot(obj.etag, AcceptorState.from_body(e.body, key))
        with self._lock:
            self._slots[(app, i)] = slot
        return slot

    def _read_all(self, app: AppKey) -> dict[int, AcceptorState]:
        """Every acceptor that answers (conditional GETs on what we hold); Unreachable below a majority."""
        seen: dict[int, AcceptorState] = {}
        self._forget_unreachable()
        for i in range(len(self.stores)):
            with self._lock:
                cached = self._slots.get((app, i))
            try:
                slot = self._get(app, i, if_none_match=cached.etag if cached and cached.etag else None)
            except CorruptObject as e:
                self.unreachable[i] = f"corrupt acceptor object: {e.message}"
                continue
            except S3PeerError as e:
                self.unreachable[i] = e.message
                continue
            seen[i] = slot.state
            self._learn(max(slot.state.promise, slot.state.accepted.ballot))
        if len(seen) < self.majority:
            raise self._no_quorum(len(seen))
        return seen
