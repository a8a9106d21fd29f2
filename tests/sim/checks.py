"""The invariants of protocol.md, checked on the ground truth after every simulated step.

- I1: one Primary per generation over every dr-state ever stored; the generation each
  cluster has acted on (DRControl status) never decreases.
- Two VRGs asked to be primary at once only in the failover window: the highest dr-state
  is a Failover and the other primary is its previousPrimary, which has not yet demoted.
- I2: a VRG asked to be primary under a Relocate finds the old Primary's VRG asked to be
  secondary and reporting Secondary.
- I3: a VRG is asked to be primary only by a cluster that can reach S3, while the stored
  dr-state is valid and names it.
- I5: ReadyForApplication is True only on a cluster whose VRG is asked to be primary and
  which is the Primary of the generation it reports, and never on two clusters for the
  same generation.
- I4: after the faults stop, `unsettled()` becomes None (both clusters agree with dr-state).
- P1 (protocol.md principle 1): a cluster changes its VRG's role, or becomes
  ReadyForApplication, only in a step in which it read or wrote dr-state (a reconcile woken
  by a resync plans from the dr-state it holds, and must read it before either).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.api import DRCONTROL
from reconciler.kube import Obj
from reconciler.s3peer import AppKey, ClusterStatus, CorruptObject, DRState, KeySchema, decode, encode
from reconciler.s3peer.digestpages import page_key, page_of
from reconciler.s3peer.envelope import Kind
from reconciler.s3peer.quorum import Accepted, AcceptorState
from tests.sim.fluxmodel import app_running

if TYPE_CHECKING:
    from tests.sim.world import Event, World

NS = "ns"
DR_STATE_KEY = KeySchema().dr_state(AppKey("ns", "app"))
ACCEPTOR_KEY = KeySchema().dr_state_acceptor(AppKey("ns", "app"))
POLL_INTERVAL = 5.0  # the snapshot lifetime the simulated operators run with
STATUS_KEYS = {c: KeySchema().cluster_status(AppKey("ns", "app"), c) for c in ("east", "west")}
INTENT_KEYS = {c: KeySchema().dr_intent(AppKey("ns", "app"), c) for c in ("east", "west")}


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str


def decode_state(data: bytes | None) -> DRState | None:
    if data is None:
        return None
    try:
        return DRState.from_body(decode(data, key=DR_STATE_KEY, expected_kind=Kind.DR_STATE).body, DR_STATE_KEY)
    except CorruptObject:
        return None


def _is_marker(data: bytes) -> bool:
    try:
        return decode(data).kind == Kind.DR_STATE_MOVED
    except CorruptObject:
        return False


def _acceptor(data: bytes | None) -> AcceptorState | None:
    if data is None:
        return None
    try:
        return AcceptorState.from_body(decode(data, expected_kind=Kind.DR_ACCEPTOR).body, None)
    except CorruptObject:
        return None


def _accepted(data: bytes | None) -> Accepted | None:
    st = _acceptor(data)
    return st.accepted if st is not None else None


@functools.lru_cache(maxsize=1024)
def _accepted_value(data: bytes) -> tuple[str, DRState | None, str] | None:
    """(nonce, state, writer) an acceptor object holds; cached, as every step reads every acceptor
    and most of them have not changed."""
    try:
        acc = AcceptorState.from_body(decode(data, expected_kind=Kind.DR_ACCEPTOR).body, None).accepted
    except CorruptObject:
        return None
    return acc.nonce, acc.state, acc.writer


def quorum_chosen(buckets: list[Any]) -> tuple[str, DRState | None, str] | None:
    """(nonce, dr-state or None, writer) of the value a majority of acceptors hold; None when no
    value does (a write in flight). Nonce "" is the empty register (never claimed)."""
    held: dict[str, tuple[int, DRState | None, str]] = {}
    for b in buckets:
        raw = b.objects.get(ACCEPTOR_KEY)
        if raw is None:
            nonce, state, writer = "", None, ""
        else:
            value = _accepted_value(raw[0])
            if value is None:
                continue
            nonce, state, writer = value
        n = held.get(nonce, (0, state, writer))[0] + 1
        held[nonce] = (n, state, writer)
    for nonce, (n, state, writer) in held.items():
        if n > len(buckets) // 2:
            return nonce, state, writer
    return None


@functools.lru_cache(maxsize=1024)
def _decode_status(data: bytes | None) -> ClusterStatus | None:
    if data is None:
        return None
    try:
        return ClusterStatus.from_body(decode(data, expected_kind=Kind.CLUSTER_STATUS).body, None)
    except CorruptObject:
        return None


def _cond(obj: Obj | None, ctype: str) -> str:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return str(c.get("status"))
    return ""


def _spec_state(vrg: Obj | None) -> str:
    return str(((vrg or {}).get("spec") or {}).get("replicationState") or "")


class Checker:
    def __init__(self, world: World) -> None:
        self.world = world
        self.violations: list[Violation] = []
        self.gen_primary: dict[int, str] = {}
        self.highest: DRState | None = None
        self._seen = 0
        self._last_current: DRState | None = None  # the stored dr-state after the previous step
        self._max_gen: dict[str, int] = {}
        self._uid: dict[str, Any] = {}
        self._vrg_state: dict[str, str] = {}
        self._was_ready: dict[str, bool] = {}
        self._vrg_spec: dict[str, Any] = {}
        self._released: dict[str, bool] = {}
        # The VRG generation at which each cluster's current release was seen beside a VRG reporting
        # Secondary for it: a later health change (a PVC joining) does not undo a finished demotion.
        self._sound_release: dict[str, int] = {}
        self._asked_at: dict[str, float] = {}
        self._acted: dict[str, int] = {}  # the highest dr-state generation each cluster changed its VRG under
        self._tampered = False
        self._forged: list[tuple[str, bytes]] = []
        self._chosen_nonce = ""  # with a quorum: the value last seen chosen

    def violation(self, invariant: str, message: str) -> None:
        self.violations.append(Violation(invariant, message))
        self.world.trace.append(f"  VIOLATION {invariant}: {message}")

    # -- third-party writes to the bucket ----------------------------------------------------
    def _register_used(self) -> bool:
        """dr-state lives in the quorum register: from the start, or once a move into it began."""
        w = self.world
        if w.variant.quorum:
            return True
        if not w.variant.migrate:
            return False
        chosen = quorum_chosen(w.buckets)
        return chosen is None or chosen[0] != ""

    def current_state(self) -> DRState | None:
        """The stored dr-state: the object, or with a quorum the value a majority holds (the last
        one chosen while a write is in flight, or while the single store's is being moved)."""
        w = self.world
        if self._register_used():
            chosen = quorum_chosen(w.buckets)
            return chosen[1] if chosen is not None else self._last_current
        stored = w.bucket.objects.get(DR_STATE_KEY)
        if stored and w.variant.migrate and _is_marker(stored[0]):
            return self._last_current  # marked as moving, not yet in the register
        return decode_state(stored[0]) if stored else None

    def _tamper_acceptor(self, kind: str) -> None:
        # One store restored from a backup, or corrupted: a majority must outvote it.
        b = self.world.buckets[0]
        if ACCEPTOR_KEY not in b.objects:
            return
        if kind == "corrupt_drstate":
            b.put(ACCEPTOR_KEY, b'{"apiVersion": "p2p.ramendr', "tamper")
            self._tampered = True
            return
        # Restored from a backup taken after the claim: an older accepted dr-state, like the single
        # store's rollback (a backup from before the claim would be a deleted dr-state).
        cur = _accepted(b.objects[ACCEPTOR_KEY][0])
        older = [v for v in b.history if v.key == ACCEPTOR_KEY and v.writer not in ("tamper", "repair")
                 and (a := _accepted(v.data)) is not None and a.state is not None and cur is not None
                 and cur.state is not None and a.state.generation < cur.state.generation]
        if older:
            b.put(ACCEPTOR_KEY, older[-1].data or b"", "tamper")
            self._tampered = True

    def tamper(self, kind: str) -> None:
        b = self.world.bucket
        if self.world.variant.quorum:
            self._tamper_acceptor(kind)
            return
        if kind == "corrupt_drstate":
            if DR_STATE_KEY in b.objects:
                b.put(DR_STATE_KEY, b'{"apiVersion": "p2p.ramendr', "tamper")
                self._tampered = True
            return
        cur = decode_state(b.objects.get(DR_STATE_KEY, (None, ""))[0])
        older = [v for v in b.history if v.key == DR_STATE_KEY and v.writer != "tamper"
                 and (s := decode_state(v.data)) is not None and cur is not None and s.generation < cur.generation]
        if older:
            b.put(DR_STATE_KEY, older[-1].data or b"", "tamper")  # a bucket restored from an older backup
            self._tampered = True

    def forge_release(self) -> None:
        """A third party rewrites the Primary's own digest entry to say it released its generation."""
        b = self.world.bucket
        current = self.current_state()
        if current is None:
            return
        keys = KeySchema()
        index = b.objects.get(keys.digest(current.primary))
        if index is None:
            return
        count = decode(index[0], expected_kind=Kind.DIGEST_INDEX).body["pageCount"]
        key = page_key(keys, current.primary, count, page_of(AppKey("ns", "app"), count))
        stored = b.objects.get(key)
        if stored is None:
            return
        env = decode(stored[0], expected_kind=Kind.DIGEST_PAGE)
        body = json.loads(json.dumps(env.body))
        entry = body.get("apps", {}).get("ns/app")
        if entry is None:
            return
        entry.update(role="secondary-ready", observedGeneration=current.generation)
        data, _ = encode(Kind.DIGEST_PAGE, current.primary, body, now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
        self._forged.append((key, stored[0]))
        b.put(key, data, "tamper")

    def repair(self) -> None:
        """What an operator does about a tampered bucket: put the newest dr-state back, undo forgeries."""
        b = self.world.bucket
        for key, data in reversed(self._forged):
            b.put(key, data, "repair")
        self._forged.clear()
        if not self._tampered:
            return
        if self.world.variant.quorum:
            # Put back what the acceptor must never forget: its highest promise and the accepted value
            # with the highest ballot it ever held (the writes since the tamper included).
            states = [st for v in b.history if v.key == ACCEPTOR_KEY and v.writer not in ("tamper", "repair")
                      and (st := _acceptor(v.data)) is not None]
            if states:
                kept = AcceptorState(max(st.promise for st in states),
                                     max((st.accepted for st in states), key=lambda a: a.ballot))
                data, _ = encode(Kind.DR_ACCEPTOR, "repair", kept.to_body(),
                                 now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
                b.put(ACCEPTOR_KEY, data, "repair")
            self._tampered = False
            return
        best = None
        for v in b.history:
            s = decode_state(v.data) if v.key == DR_STATE_KEY and v.writer != "tamper" else None
            if s is not None and (best is None or s.generation >= best[0].generation):
                best = (s, v.data)
        if best is not None:
            b.put(DR_STATE_KEY, best[1] or b"", "repair")
        self._tampered = False

    # -- the checks --------------------------------------------------------------------------
    def _cut_off(self, c: str) -> bool:
        """`c` reaches fewer than a majority of the stores dr-state lives in (one, without a quorum)."""
        node = self.world.nodes[c]
        stores = node.stores if node.quorum else node.stores[:1]
        reachable = sum(1 for client in stores if not client.faults.down and not client.bucket.down)
        return reachable <= len(stores) // 2

    def _new_states(self) -> list[tuple[str, bool, DRState | None]]:
        """dr-state values stored since the last check, by whom: (writer, deleted, state)."""
        w = self.world
        out: list[tuple[str, bool, DRState | None]] = []
        if w.variant.quorum or w.variant.migrate:
            chosen = quorum_chosen(w.buckets)
            if chosen is not None and chosen[0] not in (self._chosen_nonce, ""):
                self._chosen_nonce = chosen[0]
                out.append((chosen[2], chosen[1] is None, chosen[1]))
            if w.variant.quorum:
                return out
        # The single store's history (before a move; a move's marker holds no dr-state of its own).
        hist = w.bucket.history
        for ver in hist[self._seen:]:
            if ver.key != DR_STATE_KEY or ver.writer in ("tamper", "repair"):
                continue
            out.append((ver.writer, ver.data is None, decode_state(ver.data) if ver.data is not None else None))
        self._seen = len(hist)
        return out

    def check(self, ev: Event) -> None:
        w = self.world
        for writer, deleted, s in self._new_states():
            if deleted:
                # dr-state goes with the last cluster to leave: never from under a live protection
                # that has published itself (one that never said anything cannot be known).
                live = [c for c in w.nodes if c != writer and self._protecting(c)]
                if live:
                    self.violation("Orphaned", f"{writer} deleted dr-state while {live} still protect the app")
                self.gen_primary.clear()  # a later protection starts a new lineage at generation 1
                self.highest = None
                continue
            if s is None:
                continue
            had = self.gen_primary.setdefault(s.generation, s.primary)
            if had != s.primary:
                self.violation("I1", f"generation {s.generation} names {had} and {s.primary}")
            if self.highest is None or s.generation > self.highest.generation:
                self.highest = s
        current = self.current_state()
        self._last_current = current

        vrgs = {c: w.vrg(c) for c in w.nodes}
        drcs = {c: w.drcontrol(c) for c in w.nodes}
        for c, drc in drcs.items():
            uid = (drc or {}).get("metadata", {}).get("uid")
            if uid != self._uid.get(c):
                # A new DRControl is a new protection (docs/protocol.md, Decisions): it starts over.
                self._uid[c] = uid
                self._max_gen.pop(c, None)
                self._acted.pop(c, None)
            g = int(((drc or {}).get("status") or {}).get("generation") or 0)
            if g < self._max_gen.get(c, 0):
                self.violation("I1", f"{c} went back from generation {self._max_gen[c]} to {g}")
            self._max_gen[c] = max(g, self._max_gen.get(c, 0))

        primaries = [c for c, v in vrgs.items() if _spec_state(v) == "primary"]
        if len(primaries) > 1:
            h = self.highest
            if not (h is not None and h.action == "Failover" and h.primary in primaries):
                self.violation("DualPrimary", f"both VRGs asked to be primary; highest dr-state {h}")

        for c, v in vrgs.items():
            state = _spec_state(v)
            was = self._vrg_state.get(c, "")
            self._vrg_state[c] = state
            spec = (v or {}).get("spec")
            if spec != self._vrg_spec.get(c) and current is not None:
                # The VRG changed under the stored dr-state: that generation was acted on (I1: the
                # generations a cluster acts on never decrease, even across a restored bucket).
                acted = max(self._acted.get(c, 0), self._max_gen.get(c, 0))
                if state == "primary" and was != "primary" and current.generation < acted:
                    self.violation("I1", f"{c} promoted under generation {current.generation} after acting on "
                                         f"generation {acted}")
                self._acted[c] = max(acted, current.generation)
            self._vrg_spec[c] = spec
            if state != was and was and state and c not in getattr(w, "drstate_io", {c}):
                self.violation("P1", f"{c} changed its VRG from {was} to {state} without reading or writing "
                                     "dr-state first")
            if state != was and was and state and self._cut_off(c):
                self.violation("I3", f"{c} changed its VRG from {was} to {state} while S3 is unreachable")
            if state != "primary" or was == "primary":
                continue
            # A promotion happened in this step.
            if current is None or current.primary != c:
                self.violation("I3", f"{c} promoted but the stored dr-state is {current}")
            elif current.action == "Relocate":
                other = next(o for o in w.nodes if o != c)
                ov = vrgs[other]
                ost = (ov or {}).get("status") or {}
                ogen = int((ov or {}).get("metadata", {}).get("generation") or 0)
                reported = ost.get("state") == "Secondary" and int(ost.get("observedGeneration") or 0) == ogen
                demoted = reported or (ost.get("state") != "Primary" and self._sound_release.get(other) == ogen)
                if ov is not None and (_spec_state(ov) != "secondary" or not demoted):
                    self.violation("I2", f"{c} promoted for a relocate while {other}'s VRG is {_spec_state(ov)}/"
                                         f"{ost.get('state')}")

        for c in w.nodes:
            # A release (secondary-ready at the current generation) lets the peer promote: it must
            # never be published while the VRG is still asked to be primary (I2).
            rel = _decode_status(w.bucket.objects.get(STATUS_KEYS[c], (None, ""))[0])
            released = (rel is not None and current is not None and rel.role == "secondary-ready"
                        and current.primary == c and rel.observed_generation == current.generation)
            if released and _spec_state(vrgs[c]) == "primary":
                self.violation("I2", f"{c} published its release of the current generation while its VRG "
                                     "is asked to be primary")
            if self._relocate_asked(c, drcs):
                self._asked_at[c] = w.clock
            # A withdrawal may take one poll interval to be seen (the peer's snapshot is that old).
            stale_view = w.clock - self._asked_at.get(c, -1e9) <= POLL_INTERVAL
            if released and not self._released.get(c) and not stale_view:
                self.violation("Unasked", f"{c} released generation {current.generation if current else 0} "
                                          "for a relocate nobody asks for")
            self._released[c] = released
            v = vrgs[c] or {}
            vst = v.get("status") or {}
            vgen = int(v.get("metadata", {}).get("generation") or 0)
            if not released:
                self._sound_release.pop(c, None)
            elif (_spec_state(v) == "secondary" and vst.get("state") == "Secondary"
                  and int(vst.get("observedGeneration") or 0) == vgen):
                self._sound_release[c] = vgen

        if w.variant.flux or w.variant.argocd:
            for c, node in w.nodes.items():
                # I6: the application (Flux's or Argo CD's) and a Secondary VRG never share a cluster:
                # the relocate's final sync and demotion, and an old Primary's demotion, follow its removal.
                if app_running(node.server, NS) and _spec_state(vrgs[c]) == "secondary":
                    self.violation("I6", f"{c}: the application runs while the VRG is asked to be secondary")

        for c, drc in drcs.items():
            ready = _cond(drc, "ReadyForApplication") == "True"
            if ready and not self._was_ready.get(c, False) and c not in getattr(w, "drstate_io", {c}):
                self.violation("P1", f"{c} became ReadyForApplication without reading or writing dr-state first")
            self._was_ready[c] = ready
        ready_gens: dict[int, str] = {}
        for c, drc in drcs.items():
            if _cond(drc, "ReadyForApplication") != "True" or (drc or {})["metadata"].get("deletionTimestamp"):
                continue  # a protection being removed no longer gates anything
            g = int(((drc or {}).get("status") or {}).get("generation") or 0)
            if _spec_state(vrgs[c]) != "primary":
                self.violation("I5", f"{c} is ReadyForApplication but its VRG is asked to be "
                                     f"{_spec_state(vrgs[c]) or 'absent'}")
            if self.gen_primary.get(g) != c:
                self.violation("I5", f"{c} is ReadyForApplication at generation {g}, whose Primary is "
                                     f"{self.gen_primary.get(g)}")
            if g in ready_gens:
                self.violation("I5", f"{ready_gens[g]} and {c} are both ReadyForApplication at generation {g}")
            ready_gens[g] = c

    def _protecting(self, c: str) -> bool:
        """`c` has a DRControl not being deleted and has said so: a cluster-status that is not a
        "leaving" tombstone, or the dr-state it wrote names it (it claimed or took over)."""
        server = self.world.nodes[c].server
        drc = server.objects.get(server.key(DRCONTROL, "app", "ns"))
        if drc is None or drc["metadata"].get("deletionTimestamp"):
            return False
        if self._last_current is not None and self._last_current.primary == c:
            return True
        status = _decode_status(self.world.bucket.objects.get(STATUS_KEYS[c], (None, ""))[0])
        return status is not None and not status.details.get("leaving")

    def _relocate_asked(self, source: str, drcs: dict[str, Obj | None]) -> bool:
        """Some cluster's spec, or a published intent object, asks to relocate away from `source`."""
        target = next(o for o in self.world.nodes if o != source)
        for drc in drcs.values():
            spec = (drc or {}).get("spec") or {}
            if spec.get("action") == "Relocate" and spec.get("targetCluster") == target:
                return True
        for key in INTENT_KEYS.values():
            data = self.world.bucket.objects.get(key, (None, ""))[0]
            if data is None:
                continue
            try:
                body = decode(data, expected_kind=Kind.DR_INTENT).body
            except CorruptObject:
                continue
            if body.get("action") == "Relocate" and body.get("target") == target:
                return True
        return False

    def unsettled(self) -> str | None:
        """None when both clusters agree with dr-state and nothing is in progress; else what is not."""
        w = self.world
        cur = self.current_state()
        if cur is None:
            return "no valid dr-state"
        for c in w.nodes:
            drc, vrg = w.drcontrol(c), w.vrg(c)
            st: dict[str, Any] = (drc or {}).get("status") or {}
            want = "primary" if c == cur.primary else "secondary"
            vst = (vrg or {}).get("status") or {}
            if _spec_state(vrg) != want or vst.get("state") != want.capitalize():
                return f"{c}: VRG {_spec_state(vrg)}/{vst.get('state')}, wanted {want} (dr-state {cur})"
            if st.get("generation") != cur.generation or st.get("currentPrimary") != cur.primary:
                return f"{c}: status at {st.get('generation')}/{st.get('currentPrimary')}, dr-state {cur}"
            if (_cond(drc, "ReadyForApplication") == "True") != (c == cur.primary):
                return f"{c}: ReadyForApplication {_cond(drc, 'ReadyForApplication')}"
            if _cond(drc, "Stalled") == "True":
                return f"{c}: Stalled"
            if (w.variant.flux or w.variant.argocd) and app_running(w.nodes[c].server, NS) != (c == cur.primary):
                return f"{c}: the application {'runs' if c != cur.primary else 'does not run'} here"
            la = st.get("lastAction") or {}
            if la.get("result") == "InProgress":
                return f"{c}: lastAction in progress: {la}"
        return None
