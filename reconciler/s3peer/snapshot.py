"""Reading the peer: a snapshot of its health, digest, statuses and intents at O(1) cost per poll.

Each poll GETs the peer's health and digest index with If-None-Match (a 304 when
unchanged), then the digest pages listed at a sequence other than the one held
(digestpages.py), then only the cluster-status / dr-intent objects whose hash in
the digest differs from the copy we hold. Snapshots are cached for the poll
interval (cachetools) so every reconcile in a cycle shares one poll.

A nudge or a busy peer makes polls frequent, so a poll's CPU is kept to what
changed: only changed pages are fetched and validated, an entry that did not
change stays the object held, only apps with a new entry or an object still to
fetch are looked at, and the snapshot's tables are rebuilt only when one changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from cachetools import TLRUCache

from reconciler.s3peer import envelope as env
from reconciler.s3peer.digestpages import (
    DigestInconsistent,
    DigestIndex,
    DigestPage,
    behind,
    decode_page,
    decode_root,
    page_key,
    page_of,
    usable,
)
from reconciler.s3peer.drstate import Record
from reconciler.s3peer.envelope import Kind
from reconciler.s3peer.errors import CorruptObject, S3PeerError
from reconciler.s3peer.keys import AppKey, KeySchema
from reconciler.s3peer.models import (
    ClusterStatus,
    Digest,
    DigestEntry,
    DRIntent,
    Health,
    StorageClasses,
)
from reconciler.s3peer.peer import decode_record
from reconciler.s3peer.store import NOT_MODIFIED, ObjectStore, StoredObject

DEFAULT_HEARTBEAT_INTERVAL = 60.0
DEFAULT_STALE_AFTER = 3 * DEFAULT_HEARTBEAT_INTERVAL


# -- peer health: a pure state machine on the local monotonic clock ----------
@dataclass(frozen=True)
class HealthTrack:
    """What we remember about the peer's heartbeat between polls."""

    etag: str | None  # None: no heartbeat object seen yet
    changed_at: float  # local monotonic time the ETag last changed (or tracking started)
    last_seen: str | None  # writtenAt of the last changed heartbeat
    health: Health | None
    corrupt: str | None = None


@dataclass(frozen=True)
class PeerHealth:
    """The peer's liveness as judged here. `stale` never compares two clusters' wall clocks."""

    seen: bool
    stale: bool
    last_seen: str | None
    unchanged_for: float
    sequence: int | None
    ready: bool | None
    #: Reason of a corrupt heartbeat object; liveness still follows its ETag.
    corrupt: str | None = None


def start_tracking(monotonic_now: float) -> HealthTrack:
    return HealthTrack(etag=None, changed_at=monotonic_now, last_seen=None, health=None)


def observe_heartbeat(track: HealthTrack, etag: str | None, record: Record[Health] | None,
                      monotonic_now: float, corrupt: str | None = None) -> HealthTrack:
    """Fold one observation of the health object into the track (pure).

    Any change of ETag is a sign of life (every write carries a fresh nonce);
    a heartbeat that disappears does not reset the clock.
    """
    if etag is None or etag == track.etag:
        return track
    return HealthTrack(
        etag=etag,
        changed_at=monotonic_now,
        last_seen=record.written_at if record else track.last_seen,
        health=record.value if record else None,
        corrupt=corrupt,
    )


def assess(track: HealthTrack, monotonic_now: float, stale_after: float) -> PeerHealth:
    unchanged = max(0.0, monotonic_now - track.changed_at)
    return PeerHealth(
        seen=track.etag is not None,
        stale=unchanged > stale_after,
        last_seen=track.last_seen,
        unchanged_for=unchanged,
        sequence=track.health.sequence if track.health else None,
        ready=track.health.ready if track.health else None,
        corrupt=track.corrupt,
    )


# -- the snapshot ------------------------------------------------------------
def _updated(view: Mapping[AppKey, Any], table: Mapping[AppKey, _Cached], apps: set[AppKey]) -> dict[AppKey, Any]:
    out = dict(view)
    for app in apps:
        c = table.get(app)
        if c is None or c.value is None:
            out.pop(app, None)
        else:
            out[app] = c.value
    return out


@dataclass(frozen=True)
class PeerSnapshot:
    """The peer as of one poll. Per-app accessors raise the CorruptObject of a bad object."""

    peer: str
    health: PeerHealth
    digest: Mapping[AppKey, DigestEntry]
    statuses: Mapping[AppKey, Record[ClusterStatus] | CorruptObject]
    intents: Mapping[AppKey, Record[DRIntent] | CorruptObject]
    storage_classes: StorageClasses | None
    #: Apps whose peer status or intent changed in the poll that produced this snapshot.
    changed: frozenset[AppKey]
    digest_error: CorruptObject | None = None
    requests: int = 0
    #: Pages of the peer's digest that could not be read (their apps are unknown), by page number.
    page_errors: Mapping[int, CorruptObject] = field(default_factory=dict)
    page_count: int = 1

    def _check(self, app: AppKey) -> None:
        if self.digest_error:
            raise self.digest_error
        if self.page_errors:
            e = self.page_errors.get(page_of(app, self.page_count))
            if e is not None:
                raise e

    def entry(self, app: AppKey) -> DigestEntry | None:
        self._check(app)
        return self.digest.get(app)

    def status(self, app: AppKey) -> Record[ClusterStatus] | None:
        self._check(app)
        v = self.statuses.get(app)
        if isinstance(v, CorruptObject):
            raise v
        return v

    def intent(self, app: AppKey) -> Record[DRIntent] | None:
        self._check(app)
        v = self.intents.get(app)
        if isinstance(v, CorruptObject):
            raise v
        return v

    def apps(self) -> frozenset[AppKey]:
        return frozenset(self.digest)


@dataclass
class _Cached:
    hash: str | None  # content hash of the object we hold (None: absent)
    value: Record[Any] | CorruptObject | None
    etag: str | None = None


@dataclass
class _Page:
    page: DigestPage
    etag: str


@dataclass
class _State:
    track: HealthTrack
    health_etag: str | None = None
    digest_etag: str | None = None
    #: The peer's digest: its index and the pages held, or the single object of an earlier version.
    index: DigestIndex | None = None
    legacy: Digest | None = None
    pages: dict[int, _Page] = field(default_factory=dict)
    page_errors: dict[int, CorruptObject] = field(default_factory=dict)
    #: Every entry of the pages held (a new mapping whenever one changes).
    digest_apps: Mapping[AppKey, DigestEntry] = field(default_factory=dict)
    digest_error: CorruptObject | None = None
    statuses: dict[AppKey, _Cached] = field(default_factory=dict)
    intents: dict[AppKey, _Cached] = field(default_factory=dict)
    storage_classes: _Cached | None = None
    blind: bool = False  # the last poll failed
    #: (kind, app) -> (digest hash, monotonic time) of a fetch that did not yield that hash (absent,
    #: corrupt or different): not fetched again for the same digest hash until `retry_after` passed.
    tried: dict[tuple[str, AppKey], tuple[str | None, float]] = field(default_factory=dict)
    #: The digest entries the tables were last brought in line with, and the apps whose objects
    #: may not match their entry yet: together, what a poll has to look at.
    processed: Mapping[AppKey, DigestEntry] = field(default_factory=dict)
    pending: set[AppKey] = field(default_factory=set)
    #: The tables as last handed out in a snapshot (rebuilt when one changes).
    statuses_view: Mapping[AppKey, Record[ClusterStatus] | CorruptObject] | None = None
    intents_view: Mapping[AppKey, Record[DRIntent] | CorruptObject] | None = None


class PeerReader:
    """Polls one peer cluster's objects. `snapshot()` is what reconcilers call."""

    def __init__(
        self,
        store: ObjectStore,
        peer: str,
        *,
        keys: KeySchema | None = None,
        hmac_key: bytes | None = None,
        stale_after: float = DEFAULT_STALE_AFTER,
        poll_interval: float = 30.0,
        error_ttl: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        fetch_workers: int = 8,
        retry_after: float | None = None,
        health_stores: Sequence[ObjectStore] = (),
        on_changed: Callable[[frozenset[AppKey]], None] | None = None,
    ) -> None:
        self.store = store
        # Told the apps each poll found changed, whoever asked for the poll (the periodic poll, a
        # reconcile whose snapshot expired, a nudge): a change is found once, so whoever finds it
        # must pass it on, or the apps it concerns wait for their next resync.
        self.on_changed = on_changed
        # With dr-state over a quorum, the peer's heartbeat is in every store: read from all, so the
        # loss of one store (the one holding the other objects, too) does not look like the peer's.
        self.health_stores = list(health_stores)
        self._health_etags: dict[int, str | None] = {}
        self.peer = peer
        self.keys = keys or KeySchema()
        self.hmac_key = hmac_key or None
        self.stale_after = stale_after
        self._mono = monotonic
        self._workers = fetch_workers
        # Ghost digest entries (no object behind them) must not cost a GET per poll each.
        self._retry_after = retry_after if retry_after is not None else max(60.0, 10 * poll_interval)
        self._poll_lock = threading.Lock()
        self._state = _State(track=start_tracking(monotonic()))
        # When the cached snapshot's poll started, and when news (a nudge) last arrived.
        self._taken_at: float | None = None
        self._news_at = float("-inf")
        self._news_gap = 0.0

        def ttu(_k: str, v: PeerSnapshot | S3PeerError, now: float) -> float:
            return now + (error_ttl if isinstance(v, S3PeerError) else poll_interval)

        self._cache: TLRUCache[str, PeerSnapshot | S3PeerError] = TLRUCache(maxsize=1, ttu=ttu, timer=monotonic)

    def snapshot(self) -> PeerSnapshot:
        """The latest snapshot, polling S3 at most once per poll interval (errors are cached briefly),
        and again once news arrived (`invalidate`) and its gap has passed."""
        with self._poll_lock:
            hit = self._cache.get("s")
            now = self._mono()
            if hit is not None and self._taken_at is not None and self._taken_at < self._news_at \
                    and now - self._taken_at >= self._news_gap:
                hit = None
            polled = hit is None
            if hit is None:
                self._taken_at = now
                try:
                    hit = self._poll_locked()
                except S3PeerError as e:
                    hit = e
                self._cache["s"] = hit
        if isinstance(hit, S3PeerError):
            raise hit
        if polled:
            self._hand_over(hit)
        return hit

    def health(self) -> PeerHealth:
        """Peer health re-assessed against the monotonic clock now (no S3 request)."""
        with self._poll_lock:
            return assess(self._state.track, self._mono(), self.stale_after)

    def invalidate(self, min_gap: float = 0.0) -> float:
        """News from the peer (a nudge, a lost race): the next snapshot polls again, but not sooner
        than `min_gap` after the last poll began, so that news arriving together shares one poll.
        Returns the seconds until a snapshot will poll (0: the next one does)."""
        with self._poll_lock:
            now = self._mono()
            self._news_at, self._news_gap = now, min_gap
            wait = 0.0 if self._taken_at is None else self._taken_at + min_gap - now
            if wait <= 0:
                self._cache.clear()
                return 0.0
            return wait

    def poll_after(self, since: float, min_gap: float = 0.0) -> float:
        """Ask that the next snapshot come from a poll begun at or after `since` (this reader's
        monotonic clock). Returns 0 when the snapshot held is one or the next snapshot polls, else
        the seconds until it may poll (`min_gap` after the last poll began, as for `invalidate`)."""
        with self._poll_lock:
            if self._taken_at is not None and self._taken_at >= since and self._cache.get("s") is not None:
                return 0.0
        return self.invalidate(min_gap)

    def poll(self) -> PeerSnapshot:
        """Poll S3 now, bypassing the snapshot cache."""
        with self._poll_lock:
            self._taken_at = self._mono()
            snap = self._poll_locked()
            self._cache["s"] = snap
        self._hand_over(snap)
        return snap

    def _hand_over(self, snap: PeerSnapshot) -> None:
        # Outside the poll lock: the listener queues work and must not hold up other readers.
        if snap.changed and self.on_changed is not None:
            self.on_changed(snap.changed)

    # -- internals -------------------------------------------------------------
    def _get(self, key: str, etag: str | None) -> StoredObject | object | None:
        return self.store.get(key, if_none_match=etag, max_bytes=env.MAX_OBJECT_BYTES)

    def _poll_locked(self) -> PeerSnapshot:
        st = self._state
        requests = 0
        if self.health_stores:
            self._poll_health_everywhere(st)
            h_obj: StoredObject | object | None = NOT_MODIFIED
            d_obj = self._get(self.keys.digest(self.peer), st.digest_etag)
            requests += 1 + len(self.health_stores)
        else:
            # Both reads must succeed before anything is updated, so a failed poll changes nothing.
            try:
                h_obj = self._get(self.keys.health(self.peer), st.health_etag)
                d_obj = self._get(self.keys.digest(self.peer), st.digest_etag)
            except S3PeerError:
                st.blind = True
                raise
            requests += 2
        now = self._mono()
        if st.blind:
            # Time we could not see S3 is not silence of the peer: after an outage (which hits
            # both clusters of a shared bucket) the peer gets a full staleAfter to be heard.
            st.track = replace(st.track, changed_at=max(st.track.changed_at, now))
            st.blind = False

        if isinstance(h_obj, StoredObject):
            try:
                rec = decode_record(h_obj, Kind.HEALTH, Health.from_body, self.hmac_key)
                st.track = observe_heartbeat(st.track, h_obj.etag, rec, now)
            except CorruptObject as e:
                st.track = observe_heartbeat(st.track, h_obj.etag, None, now, corrupt=e.reason)
            st.health_etag = h_obj.etag
        elif h_obj is None:
            st.health_etag = None

        root_changed = True
        if isinstance(d_obj, StoredObject):
            st.digest_etag = d_obj.etag
            st.index, st.legacy, st.digest_error = None, None, None
            try:
                root = decode_root(d_obj, self.hmac_key).value
                if isinstance(root, Digest):
                    st.legacy = root
                else:
                    st.index = root
            except CorruptObject as e:
                st.digest_error = e
        elif d_obj is None:
            st.digest_etag, st.index, st.legacy, st.digest_error = None, None, None, None
        else:
            root_changed = False
        pages_changed = False
        if st.index is not None:
            pages_changed, n = self._poll_pages(st, st.index)
            requests += n
        elif st.pages or st.page_errors:
            st.pages, st.page_errors, pages_changed = {}, {}, True
        if root_changed or pages_changed:
            if st.legacy is not None:
                st.digest_apps = st.legacy.apps
            else:
                merged: dict[AppKey, DigestEntry] = {}
                for i in sorted(st.pages):
                    merged.update(st.pages[i].page.apps)
                st.digest_apps = merged
        sch_now = st.index.storage_classes_hash if st.index else st.legacy.storage_classes_hash if st.legacy else None

        changed: set[AppKey] = set()
        digest = st.digest_apps
        if digest is not st.processed:
            before = st.processed
            # Apps gone from the digest are gone from the peer.
            for app in [a for a in before if a not in digest]:
                for table in (st.statuses, st.intents):
                    if table.pop(app, None) is not None:
                        changed.add(app)
                st.pending.discard(app)
            for tk in [t for t in st.tried if t[1] not in digest]:
                del st.tried[tk]
            # An unchanged entry is the very object held before (_poll_pages keeps it).
            st.pending.update(app for app, entry in digest.items() if before.get(app) is not entry)
            st.processed = digest

        jobs: list[tuple[str, AppKey, str | None]] = []
        for app in list(st.pending):
            entry = digest.get(app)
            if entry is None:
                st.pending.discard(app)
                continue
            settled = True
            for kind, want in (("status", entry.status_hash), ("intent", entry.intent_hash)):
                cached = (st.statuses if kind == "status" else st.intents).get(app)
                if cached is None and want is None:
                    continue
                if cached is None or cached.hash != want:
                    settled = False
                    tried = st.tried.get((kind, app))
                    if tried is not None and tried[0] == want and now - tried[1] < self._retry_after:
                        continue
                    jobs.append((kind, app, want))
            if settled:
                st.pending.discard(app)

        sc_want = sch_now
        fetch_sc = sc_want is not None and (st.storage_classes is None or st.storage_classes.hash != sc_want)

        results = self._fetch_all(jobs)
        requests += len(jobs)
        for (kind, app, want), cached in zip(jobs, results, strict=True):
            table = st.statuses if kind == "status" else st.intents
            prev = table.get(app)
            if cached.hash == want:
                st.tried.pop((kind, app), None)
            else:
                st.tried[(kind, app)] = (want, now)
            if isinstance(cached.value, Record) and cached.hash != want:
                # Written but not yet in the digest: not published. The writer reads its own state
                # from its digest, so both sides agree on what was said (a release, say). What we
                # held before is no longer vouched for either (e.g. an intent being withdrawn).
                if table.pop(app, None) is not None:
                    changed.add(app)
                continue
            if cached.value is None:
                table.pop(app, None)
            else:
                table[app] = cached
            if prev is None or prev.hash != cached.hash or prev.etag != cached.etag:
                changed.add(app)

        if fetch_sc:
            prev_sc = st.storage_classes
            st.storage_classes = self._fetch(
                self.keys.storage_classes(self.peer), Kind.STORAGE_CLASSES, StorageClasses.from_body,
                prev_sc, lambda v: v.content_hash())
            requests += 1

        sc_val = st.storage_classes.value if st.storage_classes else None
        if st.statuses_view is None or st.intents_view is None:
            st.statuses_view = {a: c.value for a, c in st.statuses.items() if c.value is not None}
            st.intents_view = {a: c.value for a, c in st.intents.items() if c.value is not None}
        elif changed:
            # Every change to a table names its app in `changed`: copy the last views (in C) and
            # redo those apps. Snapshots handed out earlier keep the views they had.
            st.statuses_view = _updated(st.statuses_view, st.statuses, changed)
            st.intents_view = _updated(st.intents_view, st.intents, changed)
        return PeerSnapshot(
            peer=self.peer,
            health=assess(st.track, now, self.stale_after),
            digest=digest,  # never changed after parsing: shared by the snapshots of one digest
            statuses=st.statuses_view,
            intents=st.intents_view,
            storage_classes=sc_val.value if isinstance(sc_val, Record) else None,
            changed=frozenset(changed),
            digest_error=st.digest_error,
            requests=requests,
            page_errors=dict(st.page_errors),
            page_count=st.index.page_count if st.index else 1,
        )

    def _poll_pages(self, st: _State, index: DigestIndex) -> tuple[bool, int]:
        """Bring the pages held in line with the index; (whether any changed, GETs made).

        A page listed at a sequence other than the one held is fetched (conditionally). It is
        taken when it is not behind the listing (digestpages.usable); otherwise what was held
        for it stays, and with nothing held its apps are unknown (DigestInconsistent) until a
        later poll. A corrupt page drops what was held: its apps are unknown, not old.
        """
        changed = False
        for i in [i for i, held in st.pages.items() if i not in index.pages
                  or held.page.page_count != index.page_count]:
            del st.pages[i]
            changed = True
        for i in [i for i in st.page_errors if i not in index.pages]:
            del st.page_errors[i]
            changed = True
        jobs = [i for i, seq in sorted(index.pages.items())
                if i in st.page_errors or (held := st.pages.get(i)) is None or held.page.sequence != seq]
        if not jobs:
            return changed, 0

        def fetch(i: int) -> StoredObject | object | None:
            held = st.pages.get(i)
            return self._get(page_key(self.keys, self.peer, index.page_count, i), held.etag if held else None)

        if len(jobs) == 1 or self._workers <= 1:
            results = [fetch(i) for i in jobs]
        else:
            with ThreadPoolExecutor(max_workers=min(self._workers, len(jobs))) as pool:
                results = list(pool.map(fetch, jobs))
        for i, obj in zip(jobs, results, strict=True):
            held = st.pages.get(i)
            key = page_key(self.keys, self.peer, index.page_count, i)
            if obj is NOT_MODIFIED and held is not None:
                continue  # behind the listing or ahead of it: what we hold stands
            page: DigestPage | None = None
            if isinstance(obj, StoredObject):
                try:
                    page = decode_page(obj, self.hmac_key).value
                except CorruptObject as e:
                    if held is not None:
                        del st.pages[i]
                    st.page_errors[i] = e
                    changed = True
                    continue
            if page is None or not usable(page, index, i):
                if held is None and not isinstance(st.page_errors.get(i), DigestInconsistent):
                    st.page_errors[i] = behind(i, index, page, key)
                    changed = True
                continue
            assert isinstance(obj, StoredObject)
            if held is not None:
                # Entries that did not change stay the very objects held: the caller tells change by identity.
                old = held.page.apps
                page = replace(page, apps={a: (old[a] if old.get(a) == e else e) for a, e in page.apps.items()})
            st.pages[i] = _Page(page, obj.etag)
            st.page_errors.pop(i, None)
            changed = True
        return changed, len(jobs)

    def _fetch(self, key: str, kind: Kind, parse: Callable[[Mapping[str, Any], str | None], Any],
               prev: _Cached | None, hasher: Callable[[Any], str]) -> _Cached:
        obj = self._get(key, prev.etag if prev else None)
        if obj is NOT_MODIFIED and prev is not None:
            return prev
        if not isinstance(obj, StoredObject):
            return _Cached(hash=None, value=None)
        try:
            rec = decode_record(obj, kind, parse, self.hmac_key)
        except CorruptObject as e:
            # Remember the ETag so a corrupt object is not re-read every poll.
            return _Cached(hash=f"corrupt:{obj.etag}", value=e, etag=obj.etag)
        return _Cached(hash=hasher(rec.value), value=rec, etag=obj.etag)

    def _fetch_one(self, job: tuple[str, AppKey, str | None]) -> _Cached:
        kind, app, _ = job
        st = self._state
        if kind == "status":
            return self._fetch(self.keys.cluster_status(app, self.peer), Kind.CLUSTER_STATUS,
                               ClusterStatus.from_body, st.statuses.get(app), lambda v: v.content_hash())
        return self._fetch(self.keys.dr_intent(app, self.peer), Kind.DR_INTENT, DRIntent.from_body,
                           st.intents.get(app), lambda v: env.content_hash(v.to_body()))

    def _poll_health_everywhere(self, st: _State) -> None:
        """The peer's heartbeat from every store that answers; the highest sequence counts.

        A change of sequence is the sign of life (the same heartbeat lands in several stores
        under different ETags). Raises only when no store answers (then we are blind).
        """
        best: Record[Health] | None = None
        corrupt: tuple[str, str] | None = None
        answered = 0
        error: S3PeerError | None = None
        for i, store in enumerate([self.store, *self.health_stores]):
            try:
                obj = store.get(self.keys.health(self.peer), if_none_match=self._health_etags.get(i),
                                max_bytes=env.MAX_OBJECT_BYTES)
            except S3PeerError as e:
                error = error or e
                continue
            answered += 1
            if obj is NOT_MODIFIED:
                continue
            if not isinstance(obj, StoredObject):
                self._health_etags[i] = None
                continue
            self._health_etags[i] = obj.etag
            try:
                rec = decode_record(obj, Kind.HEALTH, Health.from_body, self.hmac_key)
            except CorruptObject as e:
                corrupt = (f"{i}:{obj.etag}", e.reason)
                continue
            if best is None or rec.value.sequence > best.value.sequence:
                best = rec
        if answered == 0:
            st.blind = True
            assert error is not None
            raise error
        now = self._mono()
        if st.blind:
            st.track = replace(st.track, changed_at=max(st.track.changed_at, now))
            st.blind = False
        known = st.track.health.sequence if st.track.health else None
        if best is not None and (known is None or best.value.sequence > known):
            st.track = observe_heartbeat(st.track, f"seq:{best.value.sequence}", best, now)
        elif best is None and corrupt is not None and st.track.etag is None:
            st.track = observe_heartbeat(st.track, corrupt[0], None, now, corrupt=corrupt[1])

    def _fetch_all(self, jobs: list[tuple[str, AppKey, str | None]]) -> list[_Cached]:
        if len(jobs) <= 1 or self._workers <= 1:
            return [self._fetch_one(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            return list(pool.map(self._fetch_one, jobs))

