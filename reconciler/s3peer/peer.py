"""The local side of the protocol: what one cluster reads and writes in the coordination bucket."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from cachetools import LRUCache

from reconciler.s3peer import envelope as env
from reconciler.s3peer.digestpages import (
    DigestIndex,
    DigestPage,
    decode_page,
    page_count_for,
    page_key,
    page_of,
    pages_prefix,
    read_digest,
)
from reconciler.s3peer.drstate import (
    Record,
    WriteOutcome,
    initial_state,
    next_state,
    resolve_precondition_failed,
)
from reconciler.s3peer.envelope import Kind
from reconciler.s3peer.errors import CoordinationMoved, CorruptObject, PreconditionFailed, S3PeerError, Unreachable
from reconciler.s3peer.keys import AppKey, KeySchema
from reconciler.s3peer.models import (
    Action,
    ClusterStatus,
    DigestEntry,
    DRIntent,
    DRState,
    Health,
    Role,
    StorageClasses,
)
from reconciler.s3peer.moving import MovedMarker
from reconciler.s3peer.quorum import QuorumDRState
from reconciler.s3peer.store import NOT_MODIFIED, ObjectStore, StoredObject

T = TypeVar("T")
log = logging.getLogger(__name__)


# What a digest vouches for but no object holds any more: an intent to rewrite or withdraw.
STALE_INTENT = DRIntent(Action.FAILOVER, "", 0, 0, "")


def utcnow() -> datetime:
    return datetime.now(UTC)


def decode_record(
    obj: StoredObject, kind: Kind, parse: Callable[[Mapping[str, Any], str | None], T], hmac_key: bytes | None
) -> Record[T]:
    """Envelope + body validation; raises CorruptObject / SignatureInvalid."""
    e = env.decode(obj.data, key=obj.key, expected_kind=kind, hmac_key=hmac_key)
    return Record(value=parse(e.body, obj.key), etag=obj.etag, nonce=e.nonce, writer=e.writer,
                  written_at=e.written_at)


class Coordinator:
    """One cluster's view of the coordination bucket, for the DRControl reconciler.

    Thread-safe: reconcile workers for different apps may call it concurrently.
    Writes are signed when `hmac_key` is set, and then unsigned objects read back
    are corrupt.
    """

    def __init__(
        self,
        store: ObjectStore,
        cluster: str,
        *,
        keys: KeySchema | None = None,
        hmac_key: bytes | None = None,
        now: Callable[[], datetime] = utcnow,
        dr_state_cache_size: int = 10_000,
        quorum: QuorumDRState | None = None,
        digest_linger: float = 0.0,
    ) -> None:
        self.store = store
        #: When set, dr-state lives in this register over several stores; `store` holds the rest.
        self.quorum = quorum
        self.cluster = cluster
        self.keys = keys or KeySchema()
        self.hmac_key = hmac_key or None
        self._now = now
        self._lock = threading.RLock()
        self._digest_lock = threading.Lock()
        #: How long the first report of a burst waits for others to share its digest write.
        self.digest_linger = digest_linger
        self._dr_cache: LRUCache[AppKey, Record[DRState]] = LRUCache(maxsize=dr_state_cache_size)
        self._digest: dict[AppKey, DigestEntry] | None = None  # None until loaded from S3
        self._storage_classes_hash: str | None = None
        # Group commit: every change to the digest counts one; a flush records the count it wrote,
        # so a caller whose change a flush already carried does not PUT again (flush_digest). The
        # digest needs writing exactly while the count is ahead of what was written.
        self._digest_changes = 0
        self._digest_written = 0
        # The paged layout (digestpages.py), all under _lock: the page count, each page's apps, the
        # pages changed since the last flush, the index as last written, and the last sequence.
        self._page_count = 1
        self._page_apps: dict[int, set[AppKey]] = {}
        self._dirty_pages: set[int] = set()
        self._listed: dict[int, int] = {}
        self._listed_page_count = 1
        self._sequence = 0
        self._stray_pages: set[tuple[int, int]] = set()  # (layout, page) objects that no index of ours lists
        self._verify_turn = 0
        self._heartbeat_seq: int | None = None
        # Apps whose cluster-status object this process wrote or found to match the digest.
        self._status_checked: set[AppKey] = set()
        # The ETag of each of our own objects as we last wrote it (None: known absent).
        self._etags: LRUCache[str, str | None] = LRUCache(maxsize=4 * dr_state_cache_size)
        #: Why the digest cannot be written (too large), or None.
        self.digest_problem: str | None = None

    # -- helpers -------------------------------------------------------------
    def _mark_digest_dirty(self, app: AppKey | None = None) -> None:
        # Called with _lock held. Without an app only the index needs writing.
        self._digest_changes += 1
        if app is not None:
            self._dirty_pages.add(page_of(app, self._page_count))

    def _set_entry(self, digest: dict[AppKey, DigestEntry], app: AppKey, entry: DigestEntry | None) -> None:
        # Called with _lock held: the one place entries change, so each page knows its apps.
        page = page_of(app, self._page_count)
        if entry is None:
            if digest.pop(app, None) is None:
                return
            members = self._page_apps.get(page)
            if members is not None:
                members.discard(app)
                if not members:
                    del self._page_apps[page]
        else:
            if digest.get(app) == entry:
                return
            digest[app] = entry
            self._page_apps.setdefault(page, set()).add(app)
        self._mark_digest_dirty(app)

    def _regroup(self, digest: Mapping[AppKey, DigestEntry]) -> None:
        pages: dict[int, set[AppKey]] = {}
        for app in digest:
            pages.setdefault(page_of(app, self._page_count), set()).add(app)
        self._page_apps = pages

    def _encode(self, kind: Kind, body: Mapping[str, Any], nonce: str | None = None) -> tuple[bytes, str]:
        return env.encode(kind, self.cluster, body, now=self._now(), nonce=nonce, hmac_key=self.hmac_key)

    def _put_own(self, key: str, data: bytes, *, likely_absent: bool = False) -> str:
        """PUT one of our own objects conditionally on the version we last wrote.

        A request whose answer was lost may still be applied later, after a newer write: made
        conditional on the version it meant to replace, that late request fails instead of
        putting old content back (a cluster-status the digest no longer vouches for, or an
        older digest). When the version is unknown (after a restart or a lost answer) it is
        read first; or, `likely_absent` (an intent, withdrawn after every action), a create
        (If-None-Match: *) is tried first and the object read only if it exists.
        """
        for attempt in (1, 2):
            with self._lock:
                known = key in self._etags
                etag = self._etags.get(key)
            if not known and likely_absent and attempt == 1:
                known = True  # try creating it; a PreconditionFailed reads it on the second attempt
            if not known:
                obj = self.store.get(key, max_bytes=env.MAX_OBJECT_BYTES)
                etag = obj.etag if isinstance(obj, StoredObject) else None
            try:
                new = self.store.put(key, data, if_match=etag, if_none_match_any=etag is None)
            except PreconditionFailed:
                # Changed since we wrote it (a late request of ours landed): learn the version, once.
                with self._lock:
                    self._etags.pop(key, None)
                if attempt == 2:
                    raise
                continue
            except Exception:
                with self._lock:
                    self._etags.pop(key, None)  # the outcome is unknown
                raise
            with self._lock:
                self._etags[key] = new
            return new
        raise AssertionError("unreachable")

    def _delete_own(self, key: str) -> None:
        try:
            self.store.delete(key)
        except Exception:
            with self._lock:
                self._etags.pop(key, None)
            raise
        with self._lock:
            self._etags[key] = None

    def _get_record(self, key: str, kind: Kind, parse: Callable[[Mapping[str, Any], str | None], T]
                    ) -> Record[T] | None:
        obj = self.store.get(key, max_bytes=env.MAX_OBJECT_BYTES)
        if obj is None or obj is NOT_MODIFIED:
            return None
        assert isinstance(obj, StoredObject)
        return decode_record(obj, kind, parse, self.hmac_key)

    # -- dr-state --------------------------------------------------------------
    def read_dr_state(self, app: AppKey) -> Record[DRState] | None:
        """The current dr-state (None when absent). One GET, ETag-conditional when we hold a copy.

        Raises Unreachable/Throttled, or CorruptObject/SignatureInvalid for an object never to act on.
        """
        if self.quorum is not None:
            acc = self.quorum.read_accepted(app)
            if acc.nonce:
                return acc.record()  # claimed, or removed (a tombstone): the register decides
            return self._move_into_quorum(app, self.quorum)
        key = self.keys.dr_state(app)
        with self._lock:
            cached = self._dr_cache.get(app)
        obj = self.store.get(key, if_none_match=cached.etag if cached else None, max_bytes=env.MAX_OBJECT_BYTES)
        if obj is NOT_MODIFIED and cached is not None:
            return cached
        with self._lock:
            self._dr_cache.pop(app, None)
        if obj is None or obj is NOT_MODIFIED:
            return None
        assert isinstance(obj, StoredObject)
        found = self._decode_single(obj)
        if isinstance(found, MovedMarker):
            raise CoordinationMoved(found.moved_message(), key=key)
        with self._lock:
            self._dr_cache[app] = found
        return found

    def cached_dr_state(self, app: AppKey) -> Record[DRState] | None:
        """The dr-state this process last read or wrote for `app`, without I/O; None when none is held
        (always with a quorum, whose reads are not cached here)."""
        if self.quorum is not None:
            return None
        with self._lock:
            return self._dr_cache.get(app)

    def _decode_single(self, obj: StoredObject) -> Record[DRState] | MovedMarker:
        """The single-store dr-state object: a dr-state, or the marker of a move into a quorum."""
        e = env.decode(obj.data, key=obj.key, hmac_key=self.hmac_key)
        if e.kind == Kind.DR_STATE_MOVED:
            return MovedMarker.from_body(e.body, obj.key)
        if e.kind != Kind.DR_STATE:
            raise CorruptObject(f"kind {e.kind} where {Kind.DR_STATE} was expected", key=obj.key)
        return Record(value=DRState.from_body(e.body, obj.key), etag=obj.etag, nonce=e.nonce, writer=e.writer,
                      written_at=e.written_at)

    def _move_into_quorum(self, app: AppKey, quorum: QuorumDRState) -> Record[DRState] | None:
        """The register is empty: move dr-state from the single store, if it is still there (moving.py)."""
        key = self.keys.dr_state(app)
        for _ in range(3):
            obj = self.store.get(key, max_bytes=env.MAX_OBJECT_BYTES)
            if obj is None or obj is NOT_MODIFIED:
                return None  # never protected on one store
            assert isinstance(obj, StoredObject)
            found = self._decode_single(obj)
            if isinstance(found, MovedMarker):
                if found.state is None:
                    return None  # moved before, nothing held: the register is simply empty
                state, nonce, marker_etag = found.state, found.nonce, obj.etag
            else:
                state, nonce = found.value, found.nonce
                carrying = MovedMarker(tuple(quorum.names), state, nonce)
                data, _ = self._encode(Kind.DR_STATE_MOVED, carrying.to_body())
                try:
                    marker_etag = self.store.put(key, data, if_match=obj.etag)
                except PreconditionFailed:
                    continue  # changed on the single store meanwhile: move the newer value
            out = quorum.seed(app, state, nonce)
            if out.won:
                log.info("moved dr-state (generation %d, primary %s) into the quorum of %s", state.generation,
                         state.primary, ", ".join(quorum.names), extra={"key": f"{app.namespace}/{app.name}"})
                emptied, _ = self._encode(Kind.DR_STATE_MOVED, MovedMarker(tuple(quorum.names)).to_body())
                with contextlib.suppress(S3PeerError):
                    # Best effort: a marker left holding the value only matters if the register is wiped,
                    # and then the rollback check refuses the older generation it would bring back.
                    self.store.put(key, emptied, if_match=marker_etag)
            return out.current
        raise Unreachable("dr-state kept changing on the single store while it was being moved into the quorum",
                          key=key)

    def _mark_moved(self, app: AppKey, quorum: QuorumDRState) -> Record[DRState] | None:
        """Before a first claim in the register: the empty marker at the single-store key, so that a peer
        configured with one store cannot claim there. A dr-state found there instead is moved and returned."""
        key = self.keys.dr_state(app)
        data, _ = self._encode(Kind.DR_STATE_MOVED, MovedMarker(tuple(quorum.names)).to_body())
        try:
            self.store.put(key, data, if_none_match_any=True)
            return None
        except PreconditionFailed:
            return self._move_into_quorum(app, quorum)

    def _conditional_write(self, app: AppKey, state: DRState, *, if_match: str | None, nonce: str | None
                           ) -> WriteOutcome:
        data, n = self._encode(Kind.DR_STATE, state.to_body(), nonce)
        key = self.keys.dr_state(app)
        try:
            etag = self.store.put(key, data, if_none_match_any=if_match is None, if_match=if_match)
        except PreconditionFailed:
            # Lost the race, or our own earlier attempt succeeded and this was its retry.
            with self._lock:
                self._dr_cache.pop(app, None)
            return resolve_precondition_failed(n, self.read_dr_state(app))
        e = env.decode(data, key=key, expected_kind=Kind.DR_STATE)
        rec = Record(value=state, etag=etag, nonce=n, writer=self.cluster, written_at=e.written_at)
        with self._lock:
            self._dr_cache[app] = rec
        return WriteOutcome(won=True, current=rec)

    def claim_initial(self, app: AppKey, *, nonce: str | None = None) -> WriteOutcome:
        """Create generation 1 naming this cluster Primary, with If-None-Match: *.

        `nonce` makes a retry idempotent: pass the nonce of an attempt whose outcome is unknown.
        """
        if self.quorum is not None:
            moved = self._mark_moved(app, self.quorum)
            if moved is not None:
                return WriteOutcome(won=False, current=moved)
            return self.quorum.claim_initial(app, nonce=nonce)
        state = initial_state(self.cluster, env.format_time(self._now()))
        return self._conditional_write(app, state, if_match=None, nonce=nonce)

    def transition(self, app: AppKey, expected: Record[DRState], action: Action, *,
                   intent_nonce: str | None = None, nonce: str | None = None, reclaim: bool = False) -> WriteOutcome:
        """Make this cluster Primary at generation+1, with If-Match on the version read.

        Only the cluster that becomes Primary writes a transition. The caller checks
        the action's preconditions first; on a lost race (won=False) it re-plans
        from `outcome.current`. Raises ValueError if this cluster is already Primary, unless
        `reclaim` (taking back a generation released for a relocate).
        """
        if self.quorum is not None:
            return self.quorum.transition(app, expected, action, intent_nonce=intent_nonce, nonce=nonce,
                                          reclaim=reclaim)
        state = next_state(expected.value, new_primary=self.cluster, action=action, intent_nonce=intent_nonce,
                           changed_at=env.format_time(self._now()), reclaim=reclaim)
        return self._conditional_write(app, state, if_match=expected.etag, nonce=nonce)

    def delete_dr_state(self, app: AppKey, expected: Record[DRState]) -> None:
        """Delete dr-state, only if it is still the version read (If-Match). Raises PreconditionFailed."""
        if self.quorum is not None:
            self.quorum.delete_dr_state(app, expected)
            return
        try:
            self.store.delete(self.keys.dr_state(app), if_match=expected.etag)
        finally:
            with self._lock:
                self._dr_cache.pop(app, None)

    # -- intents -----------------------------------------------------------------
    def write_intent(self, app: AppKey, intent: DRIntent) -> Record[DRIntent]:
        """Write `dr-intent/{self}`; its nonce is what a transition records as intentNonce."""
        data, n = self._encode(Kind.DR_INTENT, intent.to_body())
        key = self.keys.dr_intent(app, self.cluster)
        etag = self._put_own(key, data, likely_absent=True)
        self._update_entry(app, intent_hash=env.content_hash(intent.to_body()))
        return Record(value=intent, etag=etag, nonce=n, writer=self.cluster,
                      written_at=env.decode(data).written_at)

    def read_intent(self, app: AppKey, cluster: str) -> Record[DRIntent] | None:
        return self._get_record(self.keys.dr_intent(app, cluster), Kind.DR_INTENT, DRIntent.from_body)

    def read_own_status(self, app: AppKey) -> Record[ClusterStatus] | None:
        """This cluster's cluster-status object as stored: what the peer acts on, unlike our digest entry."""
        return self._get_record(self.keys.cluster_status(app, self.cluster), Kind.CLUSTER_STATUS,
                                ClusterStatus.from_body)

    def delete_intent(self, app: AppKey) -> None:
        """Withdraw the intent: from the digest first, so a crash in between leaves nothing the peer acts on."""
        self._update_entry(app, intent_hash=None)
        self._delete_own(self.keys.dr_intent(app, self.cluster))

    def published_intent(self, app: AppKey) -> DRIntent | None:
        """Our intent as the peer sees it: the object only when the digest vouches for its content.

        An intent written but not yet in the digest (a crash between the two PUTs) was never said,
        so the caller writes it again. When the digest vouches for an intent the object no longer
        holds (a crash between a rewrite's two PUTs), the peer may still act on the old one:
        that is returned as STALE_INTENT, which matches nothing, so the caller rewrites or
        withdraws it.
        """
        rec = self.read_intent(app, self.cluster)
        with self._lock:
            entry = self._load_digest().get(app)
        vouched = entry.intent_hash if entry is not None else None
        if rec is not None and vouched == env.content_hash(rec.value.to_body()):
            return rec.value
        return STALE_INTENT if vouched is not None else None

    # -- cluster-status and the digest --------------------------------------
    def _load_digest(self) -> dict[AppKey, DigestEntry]:
        # Called with _lock held. Start from what S3 has, so apps not reconciled
        # since a restart keep their entries and unchanged statuses cost nothing.
        if self._digest is None:
            self._digest = self._read_own_digest()
        return self._digest

    def _read_own_digest(self) -> dict[AppKey, DigestEntry]:
        """Our digest as S3 has it, and the layout and sequence to continue from."""
        def fetch(key: str) -> StoredObject | None:
            obj = self.store.get(key, max_bytes=env.MAX_OBJECT_BYTES)
            return obj if isinstance(obj, StoredObject) else None

        try:
            loaded = read_digest(fetch, self.keys, self.cluster, self.hmac_key)
        except CorruptObject as e:
            log.warning("own digest unreadable, written anew: %s", e)
            loaded = None
            self._mark_digest_dirty()
        else:
            self._etags[self.keys.digest(self.cluster)] = loaded.index_etag if loaded else None
        apps = dict(loaded.apps) if loaded else {}
        self._storage_classes_hash = loaded.storage_classes_hash if loaded else None
        if loaded is not None and loaded.index is not None:
            index = loaded.index
            self._page_count = self._listed_page_count = index.page_count
            self._listed = dict(index.pages)
            self._sequence = max([index.sequence, *(r.value.sequence for r in loaded.pages.values())])
            for i, rec in loaded.pages.items():
                self._etags[page_key(self.keys, self.cluster, index.page_count, i)] = rec.etag
                if rec.value.sequence != index.pages[i]:
                    # Written after the index (a crash between the two): list it, or no reader
                    # fetches it until the page changes again.
                    self._listed[i] = rec.value.sequence
                    self._digest_changes += 1
            self._regroup(apps)
            for i, problem in loaded.problems.items():
                # Rewritten from what we hold; its apps come back as they are reconciled.
                log.warning("own digest page %d unusable, written anew: %s", i, problem)
                self._dirty_pages.add(i)
                self._digest_changes += 1
            return apps
        # No index (none yet, a corrupt one, or the single object of an earlier version): continue
        # above any page left behind, so no reader takes an old page for a new one.
        self._sequence = self._highest_stray_sequence()
        self._page_count = page_count_for(len(apps), 1)
        self._regroup(apps)
        if apps:
            self._dirty_pages = set(self._page_apps)
            self._digest_changes += 1
        return apps

    def _highest_stray_sequence(self) -> int:
        prefix = pages_prefix(self.keys, self.cluster)
        highest = 0
        for key in self.store.list_keys(prefix):
            count, _, page = key[len(prefix):].partition("/")
            if not (count.isascii() and count.isdigit() and page.isascii() and page.isdigit()):
                continue
            self._stray_pages.add((int(count), int(page)))
            obj = self.store.get(key, max_bytes=env.MAX_OBJECT_BYTES)
            if isinstance(obj, StoredObject):
                self._etags[key] = obj.etag
                with contextlib.suppress(CorruptObject):
                    highest = max(highest, decode_page(obj, self.hmac_key).value.sequence)
        return highest

    def _update_entry(self, app: AppKey, *, intent_hash: str | None) -> None:
        with self._lock:
            digest = self._load_digest()
            old = digest.get(app)
            if old is None:
                if intent_hash is None:
                    return
                new = DigestEntry(status_hash=None, role=Role.UNKNOWN, observed_generation=0, intent_hash=intent_hash)
            else:
                new = DigestEntry(old.status_hash, old.role, old.observed_generation, intent_hash)
            self._set_entry(digest, app, new)
        self.flush_digest()

    def write_cluster_status(self, app: AppKey, status: ClusterStatus, *, flush_digest: bool = True) -> bool:
        """Write `cluster-status/{self}` only when its content changed; True when a PUT was made.

        With `flush_digest=False` the digest is written by the next `flush_digest()`
        or `heartbeat()`: useful to coalesce a burst of changes into one digest write.
        """
        h = status.content_hash()
        key = self.keys.cluster_status(app, self.cluster)
        with self._lock:
            old = self._load_digest().get(app)
            checked = app in self._status_checked
        if old is not None and old.status_hash == h:
            if checked:
                return False
            # The digest we loaded says so, but a crash between the object PUT and the digest PUT
            # leaves another content in the object: look once per app after a start.
            obj = self.store.get(key, max_bytes=env.MAX_OBJECT_BYTES)
            if isinstance(obj, StoredObject):
                try:
                    same = decode_record(obj, Kind.CLUSTER_STATUS, ClusterStatus.from_body,
                                         self.hmac_key).value.content_hash() == h
                except CorruptObject:
                    same = False
                if same:
                    with self._lock:
                        self._status_checked.add(app)
                        self._etags[key] = obj.etag
                    return False
        data, _ = self._encode(Kind.CLUSTER_STATUS, status.to_body())
        try:
            self._put_own(key, data)
        except Exception:
            # The outcome is unknown (a timeout may still have written it): the object may now
            # differ from what the digest says, so it is looked at again before being trusted.
            with self._lock:
                self._status_checked.discard(app)
            raise
        with self._lock:
            self._status_checked.add(app)
            digest = self._load_digest()
            prev = digest.get(app)
            self._set_entry(digest, app, DigestEntry(h, status.role, status.observed_generation,
                                                     prev.intent_hash if prev else None))
        if flush_digest:
            self.flush_digest()
        return True

    def read_status_of(self, app: AppKey, cluster: str) -> Record[ClusterStatus] | None:
        """A cluster's cluster-status object as stored (one GET, not through its digest)."""
        return self._get_record(self.keys.cluster_status(app, cluster), Kind.CLUSTER_STATUS, ClusterStatus.from_body)

    def forget_app(self, app: AppKey, *, keep_tombstone: bool, peer_tombstone: str | None = None) -> None:
        """Leave an app: drop its digest entry and intent; keep our "leaving" cluster-status as a
        tombstone for the peer to find, or (the last to leave) delete it and the peer's."""
        if not keep_tombstone:
            self.delete_app_keys(app)
            if peer_tombstone is not None:
                self.store.delete(self.keys.cluster_status(app, peer_tombstone))
            return
        self._delete_own(self.keys.dr_intent(app, self.cluster))
        with self._lock:
            self._set_entry(self._load_digest(), app, None)
            self._dr_cache.pop(app, None)
        self.flush_digest()

    def delete_app_keys(self, app: AppKey) -> None:
        """Delete this cluster's intent and cluster-status for an app, and its digest entry."""
        for key in self.keys.own_app_keys(app, self.cluster):
            self._delete_own(key)
        with self._lock:
            self._set_entry(self._load_digest(), app, None)
            self._dr_cache.pop(app, None)
        self.flush_digest()

    def retain_apps(self, apps: Iterable[AppKey]) -> None:
        """Drop digest entries of apps no longer protected here (objects are left to delete_app_keys)."""
        keep = set(apps)
        with self._lock:
            digest = self._load_digest()
            for app in [a for a in digest if a not in keep]:
                self._set_entry(digest, app, None)

    def flush_digest(self) -> bool:
        """Write the changed digest pages, then the index; True when a PUT was made.

        Returns once every change made before the call is in S3. Flushes are serialised (an
        older digest never overwrites a newer one), and each writes every change made so far:
        a caller that waited behind a flush which carried its change returns without a PUT,
        even if others changed the digest meanwhile (those changes are theirs to wait for).
        With several workers a burst of reports costs about one flush per PUT latency, not one
        per report (group commit), and a flush writes only the pages of the apps that changed.
        A report that finds no flush under way waits `digest_linger` first: at a few dozen reports
        a second a flush (a page and the index) is quicker than the gap between two reports, so
        without it nearly every report paid its own two PUTs.
        """
        with self._lock:
            self._load_digest()
            wanted = self._digest_changes
            if self._digest_written >= wanted:
                return False
        if self.digest_linger > 0 and not self._digest_lock.locked():
            time.sleep(self.digest_linger)
        with self._digest_lock:
            with self._lock:
                digest = self._load_digest()
                if self._digest_written >= wanted:
                    return False
                carried = self._digest_changes
                resized = page_count_for(len(digest), self._page_count)
                if resized != self._page_count:
                    self._page_count = resized
                    self._regroup(digest)
                    self._dirty_pages = set(self._page_apps)
                count = self._page_count
                dirty, self._dirty_pages = self._dirty_pages, set()
                self._sequence += 1  # before any PUT: a page written by a failed flush is never reused
                seq = self._sequence
                pages = [DigestPage(seq, count, i, {a: digest[a] for a in sorted(self._page_apps.get(i, ()),
                                                                                 key=str)})
                         for i in sorted(dirty)]
                listed = dict(self._listed) if self._listed_page_count == count else {}
                was_listed = {(self._listed_page_count, i) for i in self._listed} | self._stray_pages
                sch, napps = self._storage_classes_hash, len(digest)
            try:
                for page in pages:
                    if not page.apps:
                        listed.pop(page.page, None)
                        continue
                    data, _ = self._encode(Kind.DIGEST_PAGE, page.to_body())
                    self._put_own(page_key(self.keys, self.cluster, count, page.page), data,
                                  likely_absent=(count, page.page) not in was_listed)
                    listed[page.page] = seq
                index, _ = self._encode(Kind.DIGEST_INDEX, DigestIndex(seq, count, listed, sch).to_body())
                self._put_own(self.keys.digest(self.cluster), index)
            except Exception as e:
                if isinstance(e, env.EnvelopeTooLarge):
                    # Kept for the DRCluster status: peers cannot see our changes until the digest shrinks.
                    self.digest_problem = f"{e} ({napps} apps)"
                with self._lock:
                    # A failed PUT leaves the count ahead of what was written: the next flush writes them.
                    self._dirty_pages |= dirty
                raise
            self.digest_problem = None
            with self._lock:
                self._listed, self._listed_page_count = listed, count
                self._digest_written = max(self._digest_written, carried)
                self._stray_pages -= was_listed
            for c, i in sorted(was_listed - {(count, i) for i in listed}):
                # No index lists it now (emptied, or of the old layout): removed so the bucket holds
                # only what is said (best effort).
                with contextlib.suppress(S3PeerError):
                    self._delete_own(page_key(self.keys, self.cluster, c, i))
            return True

    def cached_digest_entries(self) -> dict[AppKey, DigestEntry] | None:
        """Our digest as held in memory, without I/O; None when it was never loaded."""
        with self._lock:
            return None if self._digest is None else dict(self._digest)

    def digest_entries(self) -> dict[AppKey, DigestEntry]:
        with self._lock:
            return dict(self._load_digest())

    def digest_entry(self, app: AppKey) -> DigestEntry | None:
        """One app's entry of our digest (what `digest_entries()[app]` says, without copying them all)."""
        with self._lock:
            return self._load_digest().get(app)

    # -- cluster-info ------------------------------------------------------------
    def write_storage_classes(self, classes: Iterable[Mapping[str, Any]]) -> bool:
        """Write storage-classes when they changed; True when a PUT was made."""
        sc = StorageClasses(classes=tuple(dict(c) for c in classes))
        h = sc.content_hash()
        with self._lock:
            self._load_digest()
            if self._storage_classes_hash == h:
                return False
        data, _ = self._encode(Kind.STORAGE_CLASSES, sc.to_body())
        self.store.put(self.keys.storage_classes(self.cluster), data)
        with self._lock:
            self._storage_classes_hash = h
            self._mark_digest_dirty()
        self.flush_digest()
        return True

    def heartbeat(self, *, operator_version: str, ready: bool = True) -> Health:
        """Write the health object with the next sequence, and flush a pending digest."""
        if self.quorum is not None:
            return self._heartbeat_everywhere(self.quorum, operator_version, ready)
        with self._lock:
            seq = self._heartbeat_seq
        if seq is None:
            seq = self._last_sequence(self.store)
        health = Health(sequence=seq + 1, operator_version=operator_version, ready=ready)
        data, _ = self._encode(Kind.HEALTH, health.to_body())
        self.store.put(self.keys.health(self.cluster), data)
        with self._lock:
            self._heartbeat_seq = health.sequence
        self._verify_digest()
        self.flush_digest()
        return health

    def _last_sequence(self, store: ObjectStore) -> int:
        obj = store.get(self.keys.health(self.cluster), max_bytes=env.MAX_OBJECT_BYTES)
        if not isinstance(obj, StoredObject):
            return 0
        try:
            return decode_record(obj, Kind.HEALTH, Health.from_body, self.hmac_key).value.sequence
        except CorruptObject:
            return 0

    def _heartbeat_everywhere(self, quorum: QuorumDRState, operator_version: str, ready: bool) -> Health:
        """With dr-state over a quorum: the heartbeat goes to every store, so the peer still hears it
        when one store is lost; it counts as sent when a majority took it (Unreachable otherwise).
        The digest, like the other objects, stays in `store`: a failure there is logged by the
        caller's next write, not a failed heartbeat."""
        with self._lock:
            seq = self._heartbeat_seq
        errors: list[str] = []
        if seq is None:
            seen = []
            for store in quorum.stores:
                try:
                    seen.append(self._last_sequence(store))
                except S3PeerError as e:
                    errors.append(str(e))
            if len(seen) < quorum.majority:
                raise Unreachable(f"the heartbeat's sequence is known from {len(seen)} of {len(quorum.stores)} "
                                  f"coordination stores, a majority of {quorum.majority} is needed: "
                                  + "; ".join(errors), key=self.keys.health(self.cluster))
            seq = max(seen)
        health = Health(sequence=seq + 1, operator_version=operator_version, ready=ready)
        data, _ = self._encode(Kind.HEALTH, health.to_body())
        took = 0
        for store in quorum.stores:
            try:
                store.put(self.keys.health(self.cluster), data)
                took += 1
            except S3PeerError as e:
                errors.append(str(e))
        with self._lock:
            self._heartbeat_seq = health.sequence
        if took < quorum.majority:
            raise Unreachable(f"the heartbeat reached {took} of {len(quorum.stores)} coordination stores, a "
                              f"majority of {quorum.majority} is needed: " + "; ".join(errors),
                              key=self.keys.health(self.cluster))
        try:
            self._verify_digest()
            self.flush_digest()
        except env.EnvelopeTooLarge:
            raise
        except S3PeerError as e:
            # The store of the other objects is down; dr-state and heartbeats go on without it.
            log.warning("digest not written: %s", e)
        return health

    def _verify_digest(self) -> None:
        """Conditional GETs of the index and of one page in turn: if either is no longer what we
        last wrote (rolled back, forged, deleted by a third party), it is written again. The
        digest is what the peer acts on; every page is looked at once per that many heartbeats."""
        key = self.keys.digest(self.cluster)
        with self._lock:
            self._load_digest()
            checks: list[tuple[str, int | None]] = [(key, None)]
            if self._listed and self._listed_page_count == self._page_count:
                turn = sorted(self._listed)[self._verify_turn % len(self._listed)]
                self._verify_turn += 1
                checks.append((page_key(self.keys, self.cluster, self._page_count, turn), turn))
            known = {k: (k in self._etags, self._etags.get(k)) for k, _ in checks}
        for k, page in checks:
            seen, etag = known[k]
            if not seen:
                continue  # nothing written or read yet: the next flush learns the version
            obj = self.store.get(k, if_none_match=etag) if etag else self.store.get(k)
            if obj is NOT_MODIFIED or (etag is None and obj is None):
                continue
            with self._lock:
                self._etags.pop(k, None)
                self._digest_changes += 1
                if page is not None:
                    self._dirty_pages.add(page)

    # -- Ramen VRG metadata (read as written by the VRG controller) -----------
    def read_ramen_object(self, key: str) -> Any | None:
        """A gzip-compressed JSON object of Ramen's VRG controller, decoded; None when absent."""
        obj = self.store.get(key, max_bytes=env.MAX_METADATA_BYTES)
        if obj is None or obj is NOT_MODIFIED:
            return None
        assert isinstance(obj, StoredObject)
        return env.decode_ramen_metadata(obj.data, key=key)

    def read_vrg_metadata(self, app: AppKey) -> Any | None:
        return self.read_ramen_object(self.keys.vrg_metadata(app))

    def read_pv_metadata(self, app: AppKey) -> dict[str, Any]:
        """All PV and PVC objects of an app by key (one LIST per kind: used on failover, not polling)."""
        out: dict[str, Any] = {}
        for prefix in (self.keys.pv_prefix(app), self.keys.pvc_prefix(app)):
            for key in self.store.list_keys(prefix):
                out[key] = self.read_ramen_object(key)
        return out
