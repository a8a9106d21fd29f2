"""Intents, cluster-status, storage-classes, heartbeat, digest and the peer snapshot, on the real server."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from e2e.s3count import counting_store
from reconciler.s3peer import (
    MAX_OBJECT_BYTES,
    Action,
    AppKey,
    ClusterStatus,
    Coordinator,
    CorruptObject,
    DRIntent,
    KeySchema,
    Kind,
    ObjectStore,
    PeerReader,
    Role,
    SignatureInvalid,
    StoredObject,
    encode,
)
from reconciler.s3peer.digestpages import DigestInconsistent, page_key, page_of

pytestmark = pytest.mark.realenv
APP = AppKey("shop", "web")
T = "2026-11-25T12:00:00Z"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def west_store(s3_settings: dict[str, str]) -> tuple[ObjectStore, Counter[str]]:
    return counting_store(s3_settings)


@pytest.fixture
def east_store(s3_settings: dict[str, str]) -> tuple[ObjectStore, Counter[str]]:
    return counting_store(s3_settings)


@pytest.fixture
def east(east_store: tuple[ObjectStore, Counter[str]], key_prefix: str) -> Coordinator:
    return Coordinator(east_store[0], "east", keys=KeySchema(key_prefix))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reader(west_store: tuple[ObjectStore, Counter[str]], key_prefix: str, clock: Clock) -> PeerReader:
    return PeerReader(west_store[0], "east", keys=KeySchema(key_prefix), stale_after=180, poll_interval=30,
                      monotonic=clock)


def _obj(s3: Any, store: ObjectStore, key: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(s3.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    return body


def test_every_key_is_written_where_the_schema_says(east: Coordinator, s3: Any, key_prefix: str) -> None:
    east.claim_initial(APP)
    east.write_intent(APP, DRIntent(Action.RELOCATE, "west", 1, 3, T))
    east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1, {"dataReady": True}))
    east.write_storage_classes([{"name": "fast", "provisioner": "rbd"}])
    east.heartbeat(operator_version="0.1.0")
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=east.store.bucket, Prefix=key_prefix)["Contents"]}
    p = key_prefix
    assert listed == {
        f"{p}shop/web/dr-state", f"{p}shop/web/dr-intent/east", f"{p}shop/web/cluster-status/east",
        f"{p}cluster-info/east/storage-classes", f"{p}cluster-info/east/health", f"{p}cluster-info/east/digest",
        f"{p}cluster-info/east/digest-pages/1/0",
    }
    for key, kind in [("shop/web/dr-state", "DRState"), ("shop/web/dr-intent/east", "DRIntent"),
                      ("cluster-info/east/digest", "DigestIndex"), ("cluster-info/east/digest-pages/1/0", "DigestPage"),
                      ("cluster-info/east/health", "Health")]:
        doc = _obj(s3, east.store, p + key)
        assert doc["kind"] == kind and doc["writer"] == "east" and doc["nonce"]
    index = _obj(s3, east.store, f"{p}cluster-info/east/digest")["body"]
    page = _obj(s3, east.store, f"{p}cluster-info/east/digest-pages/1/0")["body"]
    assert index["pageCount"] == 1 and index["pages"] == {"0": page["sequence"]}
    assert page["page"] == 0 and page["pageCount"] == 1 and page["sequence"] <= index["sequence"]
    entry = page["apps"]["shop/web"]
    assert entry["role"] == "primary" and entry["observedGeneration"] == 1 and entry["intentHash"]
    assert index["storageClassesHash"]


def test_cluster_status_is_written_only_when_it_changes(east: Coordinator,
                                                        east_store: tuple[ObjectStore, Counter[str]]) -> None:
    _, counts = east_store
    st = ClusterStatus(Role.SECONDARY, 1, {"dataReady": True})
    assert east.write_cluster_status(APP, st)
    counts.clear()
    for _ in range(5):
        assert not east.write_cluster_status(APP, st)
    assert sum(counts.values()) == 0
    assert east.write_cluster_status(APP, ClusterStatus(Role.SECONDARY_READY, 1, {"dataReady": True}))
    assert counts["PutObject"] == 3  # the status, its digest page and the digest index


def test_restarted_writer_does_not_rewrite_unchanged_statuses(east_store: tuple[ObjectStore, Counter[str]],
                                                              key_prefix: str) -> None:
    store, counts = east_store
    st = ClusterStatus(Role.PRIMARY, 2)
    assert Coordinator(store, "east", keys=KeySchema(key_prefix)).write_cluster_status(APP, st)
    counts.clear()
    restarted = Coordinator(store, "east", keys=KeySchema(key_prefix))
    assert not restarted.write_cluster_status(APP, st)
    # Its own digest (the index and its one page), and the status object once (a crash may have
    # left it behind the digest).
    assert counts == Counter({"GetObject": 3})
    counts.clear()
    assert not restarted.write_cluster_status(APP, st)
    assert counts == Counter()


def test_restarted_writer_rewrites_a_status_object_the_digest_does_not_describe(
        east_store: tuple[ObjectStore, Counter[str]], key_prefix: str) -> None:
    store, _ = east_store
    keys = KeySchema(key_prefix)
    first = Coordinator(store, "east", keys=keys)
    healthy = ClusterStatus(Role.SECONDARY, 2, {"vrgHealthy": True})
    assert first.write_cluster_status(APP, healthy)
    # Killed between the object PUT and the digest PUT of a newer report:
    unhealthy = ClusterStatus(Role.SECONDARY, 2, {"vrgHealthy": False})
    first.write_cluster_status(APP, unhealthy, flush_digest=False)
    restarted = Coordinator(store, "east", keys=keys)
    assert restarted.write_cluster_status(APP, healthy)
    assert restarted.read_status_of(APP, "east").value == healthy  # type: ignore[union-attr]


def test_heartbeat_sequence_grows_across_restarts(east_store: tuple[ObjectStore, Counter[str]],
                                                 key_prefix: str) -> None:
    store, _ = east_store
    a = Coordinator(store, "east", keys=KeySchema(key_prefix))
    assert [a.heartbeat(operator_version="v").sequence for _ in range(3)] == [1, 2, 3]
    b = Coordinator(store, "east", keys=KeySchema(key_prefix))
    assert b.heartbeat(operator_version="v").sequence == 4


def test_storage_classes_written_only_on_change(east: Coordinator, reader: PeerReader) -> None:
    classes = [{"name": "fast", "provisioner": "rbd"}, {"name": "slow", "provisioner": "cephfs"}]
    assert east.write_storage_classes(classes)
    assert not east.write_storage_classes(list(reversed(classes)))
    snap = reader.poll()
    assert snap.storage_classes is not None
    assert [c["name"] for c in snap.storage_classes.classes] == ["fast", "slow"]


def test_snapshot_reads_peer_status_and_intent(east: Coordinator, reader: PeerReader) -> None:
    east.heartbeat(operator_version="0.1.0")
    intent = east.write_intent(APP, DRIntent(Action.FAILOVER, "east", 4, 9, T))
    east.write_cluster_status(APP, ClusterStatus(Role.SECONDARY, 4, {"lastSync": "ok"}))
    snap = reader.poll()
    st = snap.status(APP)
    assert st is not None and st.value == ClusterStatus(Role.SECONDARY, 4, {"lastSync": "ok"})
    it = snap.intent(APP)
    assert it is not None and it.value.action == Action.FAILOVER and it.nonce == intent.nonce
    assert it.value.is_live(4) and not it.value.is_live(5)
    assert APP in snap.changed
    assert snap.health.seen and snap.health.sequence == 1 and not snap.health.stale
    assert snap.status(AppKey("other", "app")) is None


def test_steady_state_poll_costs_two_requests_whatever_the_app_count(
        east: Coordinator, reader: PeerReader, west_store: tuple[ObjectStore, Counter[str]]) -> None:
    _, counts = west_store
    apps = [AppKey("ns", f"app-{i}") for i in range(60)]
    for a in apps:
        east.write_cluster_status(a, ClusterStatus(Role.PRIMARY, 1), flush_digest=False)
    east.heartbeat(operator_version="v")  # flushes the digest once
    first = reader.poll()
    assert first.apps() == frozenset(apps) and first.requests == 2 + 1 + 60  # health, index, one page
    counts.clear()
    steady = reader.poll()
    assert steady.requests == 2 and sum(counts.values()) == 2 and steady.changed == frozenset()
    east.write_cluster_status(apps[7], ClusterStatus(Role.SECONDARY_READY, 1))
    counts.clear()
    after = reader.poll()
    # health, index, the page of the app that changed, and its status
    assert sum(counts.values()) == 4 and after.changed == frozenset({apps[7]})
    st = after.status(apps[7])
    assert st is not None and st.value.role == Role.SECONDARY_READY


def test_snapshot_is_cached_for_the_poll_interval(east: Coordinator, reader: PeerReader, clock: Clock,
                                                  west_store: tuple[ObjectStore, Counter[str]]) -> None:
    _, counts = west_store
    east.heartbeat(operator_version="v")
    reader.snapshot()
    counts.clear()
    for _ in range(10):
        reader.snapshot()
    assert sum(counts.values()) == 0
    clock.t += 31
    reader.snapshot()
    assert sum(counts.values()) == 2


def test_peer_goes_stale_on_the_local_clock_and_recovers(east: Coordinator, reader: PeerReader,
                                                         clock: Clock) -> None:
    east.heartbeat(operator_version="v")
    h1 = reader.poll().health
    assert h1.seen and not h1.stale and h1.last_seen is not None
    clock.t += 181
    h2 = reader.poll().health
    assert h2.stale and h2.last_seen == h1.last_seen
    east.heartbeat(operator_version="v")
    h3 = reader.poll().health
    assert not h3.stale and h3.sequence == 2


def test_delete_own_keys_removes_objects_and_digest_entry(east: Coordinator, reader: PeerReader, s3: Any) -> None:
    east.write_intent(APP, DRIntent(Action.RELOCATE, "west", 1, 1, T))
    east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1))
    assert reader.poll().status(APP) is not None
    east.delete_app_keys(APP)
    for key in east.keys.own_app_keys(APP, "east"):
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket=east.store.bucket, Key=key)
    snap = reader.poll()
    assert snap.status(APP) is None and snap.intent(APP) is None and APP in snap.changed
    assert APP not in east.digest_entries()


# -- bad objects: reported, never acted on, never a crash ---------------------
def _put(s3: Any, store: ObjectStore, key: str, data: bytes) -> None:
    s3.put_object(Bucket=store.bucket, Key=key, Body=data)


def _status_envelope(**over: Any) -> bytes:
    doc: dict[str, Any] = {"apiVersion": "p2p.ramendr.openshift.io/v1", "kind": "ClusterStatus", "writer": "east",
                           "writtenAt": T, "nonce": "n", "body": ClusterStatus(Role.PRIMARY, 1).to_body()}
    doc.update(over)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "data",
    [b"{garbage", _status_envelope(apiVersion="p2p.ramendr.openshift.io/v9"),
     _status_envelope(body={"role": "emperor", "observedGeneration": 1}),
     _status_envelope() + b" " * MAX_OBJECT_BYTES],
    ids=["invalid-json", "unknown-version", "bad-body", "oversized"],
)
def test_bad_peer_status_is_reported_per_app(east: Coordinator, reader: PeerReader, s3: Any, data: bytes) -> None:
    other = AppKey("shop", "ok")
    east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1))
    east.write_cluster_status(other, ClusterStatus(Role.PRIMARY, 1))
    _put(s3, east.store, east.keys.cluster_status(APP, "east"), data)
    east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 2))  # digest says it changed
    _put(s3, east.store, east.keys.cluster_status(APP, "east"), data)
    snap = reader.poll()
    with pytest.raises(CorruptObject):
        snap.status(APP)
    assert snap.status(other) is not None  # one bad object does not hide the others


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01", _status_envelope(kind="DRState"), json.dumps({"apiVersion": "p2p.ramendr.openshift.io/v2",
                                                                "kind": "DRState"}).encode(),
     b"{" + b" " * MAX_OBJECT_BYTES + b"}"],
    ids=["binary", "wrong-kind", "unknown-version", "oversized"],
)
def test_bad_dr_state_is_corrupt(east: Coordinator, s3: Any, data: bytes) -> None:
    _put(s3, east.store, east.keys.dr_state(APP), data)
    with pytest.raises(CorruptObject) as info:
        east.read_dr_state(APP)
    assert info.value.reason == "CorruptObject" and info.value.key == east.keys.dr_state(APP)


def test_corrupt_digest_makes_every_peer_app_report_it(east: Coordinator, reader: PeerReader, s3: Any) -> None:
    east.heartbeat(operator_version="v")
    _put(s3, east.store, east.keys.digest("east"), b"[]")
    snap = reader.poll()
    with pytest.raises(CorruptObject):
        snap.status(APP)
    assert not snap.health.stale


def test_signed_objects_round_trip_and_wrong_keys_are_refused(east_store: tuple[ObjectStore, Counter[str]],
                                                              key_prefix: str, s3: Any) -> None:
    store, _ = east_store
    keys = KeySchema(key_prefix)
    signer = Coordinator(store, "east", keys=keys, hmac_key=b"k1")
    assert signer.claim_initial(APP).won
    assert Coordinator(store, "west", keys=keys, hmac_key=b"k1").read_dr_state(APP) is not None
    with pytest.raises(SignatureInvalid):
        Coordinator(store, "west", keys=keys, hmac_key=b"k2").read_dr_state(APP)
    # An unsigned object where signatures are required is refused too.
    unsigned, _ = encode(Kind.DR_STATE, "mallory", {"primary": "mallory", "generation": 9, "action": "Failover",
                                                    "previousPrimary": "east", "intentNonce": None,
                                                    "changedAt": T}, now=datetime.now(UTC))
    s3.put_object(Bucket=store.bucket, Key=keys.dr_state(APP), Body=unsigned)
    with pytest.raises(SignatureInvalid) as info:
        Coordinator(store, "west", keys=keys, hmac_key=b"k1").read_dr_state(APP)
    assert info.value.reason == "SignatureInvalid"


def test_ramen_vrg_metadata_is_read_as_the_vrg_controller_wrote_it(east: Coordinator, s3: Any) -> None:
    vrg = {"apiVersion": "ramendr.openshift.io/v1alpha1", "kind": "VolumeReplicationGroup",
           "metadata": {"name": "web", "namespace": "shop"}}
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"}}
    _put(s3, east.store, east.keys.vrg_metadata(APP), gzip.compress(json.dumps(vrg).encode()))
    _put(s3, east.store, east.keys.pv_metadata(APP, "pv-1"), gzip.compress(json.dumps(pv).encode()))
    _put(s3, east.store, east.keys.pvc_metadata(APP, "shop", "data"), gzip.compress(json.dumps(pvc).encode()))
    assert east.read_vrg_metadata(APP) == vrg
    assert east.read_pv_metadata(APP) == {east.keys.pv_metadata(APP, "pv-1"): pv,
                                          east.keys.pvc_metadata(APP, "shop", "data"): pvc}
    assert east.read_vrg_metadata(AppKey("shop", "none")) is None



def test_a_status_not_yet_in_the_digest_is_not_taken(east: Coordinator, reader: PeerReader, s3: Any,
                                                      east_store: tuple[ObjectStore, Counter[str]]) -> None:
    east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1))
    assert reader.poll().status(APP) is not None
    # The writer crashed between the object and its digest: the object says more than the digest.
    data, _ = encode(Kind.CLUSTER_STATUS, "east", ClusterStatus(Role.SECONDARY_READY, 1).to_body(),
                     now=datetime.now(UTC))
    east_store[0].put(east.keys.cluster_status(APP, "east"), data)
    rec = reader.poll().status(APP)
    assert rec is not None and rec.value.role == Role.PRIMARY, "a status the digest does not vouch for was used"
    east.write_cluster_status(APP, ClusterStatus(Role.SECONDARY_READY, 1))  # the digest catches up
    rec = reader.poll().status(APP)
    assert rec is not None and rec.value.role == Role.SECONDARY_READY


def test_a_digest_whole_again_after_corruption_brings_every_status_back(
        east: Coordinator, reader: PeerReader, s3: Any) -> None:
    apps = [AppKey("ns", f"app-{i}") for i in range(3)]
    for a in apps:
        east.write_cluster_status(a, ClusterStatus(Role.PRIMARY, 1), flush_digest=False)
    east.heartbeat(operator_version="v")
    before = reader.poll()
    assert {a for a in apps if before.status(a) is not None} == set(apps)
    good = s3.get_object(Bucket=east.store.bucket, Key=east.keys.digest("east"))["Body"].read()
    _put(s3, east.store, east.keys.digest("east"), b"[]")
    with pytest.raises(CorruptObject):
        reader.poll().status(apps[0])
    # The same entries as before the corruption: the reader must not take them as already in hand.
    _put(s3, east.store, east.keys.digest("east"), good)
    after = reader.poll()
    assert {a for a in apps if after.status(a) is not None} == set(apps)
    east.write_cluster_status(apps[1], ClusterStatus(Role.SECONDARY, 1))
    latest = reader.poll()
    st = latest.status(apps[1])
    assert st is not None and st.value.role == Role.SECONDARY
    old = after.status(apps[1])
    assert old is not None and old.value.role == Role.PRIMARY  # a snapshot handed out keeps its view


def test_an_intent_is_created_in_one_request_and_still_replaces_one_left_by_an_earlier_process(
        east_store: tuple[ObjectStore, Counter[str]], key_prefix: str) -> None:
    store, counts = east_store
    first = Coordinator(store, "east", keys=KeySchema(key_prefix))
    first.digest_entries()  # the digest is loaded once per process; not what is counted here
    counts.clear()
    first.write_intent(APP, DRIntent(Action.FAILOVER, "east", 1, 2, T))
    # the intent, created without a GET, and the digest's page and index
    assert counts == Counter({"PutObject": 3}), counts
    restarted = Coordinator(store, "east", keys=KeySchema(key_prefix))  # knows no ETag
    restarted.write_intent(APP, DRIntent(Action.RELOCATE, "west", 1, 3, T))
    assert restarted.published_intent(APP) == DRIntent(Action.RELOCATE, "west", 1, 3, T)


# -- the digest in pages (reconciler/s3peer/digestpages.py) -------------------------------------
def _bytes_put(store: ObjectStore) -> list[int]:
    sizes: list[int] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        body = params["body"]
        sizes.append(len(body) if isinstance(body, bytes) else len(body.getvalue()))

    store.client.meta.events.register("before-call.s3.PutObject", hook)
    return sizes


def test_a_report_among_2000_apps_writes_its_page_and_the_index_not_the_whole_digest(
        east: Coordinator, east_store: tuple[ObjectStore, Counter[str]], reader: PeerReader,
        west_store: tuple[ObjectStore, Counter[str]]) -> None:
    apps = [AppKey(f"ns-{i % 40}", f"app-{i}") for i in range(2000)]
    for a in apps:
        east.write_cluster_status(a, ClusterStatus(Role.PRIMARY, 1, {"dataReady": True}), flush_digest=False)
    east.flush_digest()
    assert east._page_count == 32  # 2,000 apps at 64 a page
    stored = [east.store.get(k) for k in east.store.list_keys(f"{east.keys.cluster_info('east')}digest-pages/")]
    whole = sum(len(o.data) for o in stored if isinstance(o, StoredObject))
    assert reader.poll().apps() == frozenset(apps)

    _, counts = east_store
    sizes = _bytes_put(east.store)
    counts.clear()
    east.write_cluster_status(apps[1234], ClusterStatus(Role.SECONDARY_READY, 1, {"dataReady": True}))
    assert counts == Counter({"PutObject": 3})  # the status, its page, the index
    page, idx = sizes[1], sizes[2]
    assert page + idx < whole / 10, (page, idx, whole)  # a report costs a page, not the digest
    _, rcounts = west_store
    rcounts.clear()
    snap = reader.poll()
    assert rcounts == Counter({"GetObject": 4})  # health, index, one page, the status
    assert snap.changed == frozenset({apps[1234]})
    assert snap.status(apps[1234]).value.role == Role.SECONDARY_READY  # type: ignore[union-attr]


def test_a_single_object_digest_of_an_earlier_version_is_read_and_then_replaced_by_pages(
        s3: Any, east_store: tuple[ObjectStore, Counter[str]], reader: PeerReader, key_prefix: str) -> None:
    store, _ = east_store
    keys = KeySchema(key_prefix)
    old = Coordinator(store, "east", keys=keys)
    apps = [AppKey("ns", f"app-{i}") for i in range(5)]
    for a in apps:
        old.write_cluster_status(a, ClusterStatus(Role.SECONDARY, 3), flush_digest=False)
    entries = old.digest_entries()
    body = {"apps": {str(a): e.to_body() for a, e in entries.items()}, "storageClassesHash": None}
    _put(s3, store, keys.digest("east"), encode(Kind.DIGEST, "east", body, now=datetime.now(UTC))[0])
    assert dict(reader.poll().digest) == entries  # a peer not yet upgraded is understood

    upgraded = Coordinator(store, "east", keys=keys)
    assert upgraded.digest_entries() == entries
    upgraded.heartbeat(operator_version="new")  # the first flush writes the pages and the index
    assert _obj(s3, store, keys.digest("east"))["kind"] == "DigestIndex"
    assert dict(reader.poll().digest) == entries


def test_a_page_behind_its_index_leaves_only_its_apps_unknown_until_it_is_rewritten(
        s3: Any, east: Coordinator, reader: PeerReader, key_prefix: str) -> None:
    apps = [AppKey(f"ns-{i % 9}", f"app-{i}") for i in range(300)]  # 8 pages
    for a in apps:
        east.write_cluster_status(a, ClusterStatus(Role.PRIMARY, 1), flush_digest=False)
    east.flush_digest()
    count = east._page_count
    victim = apps[0]
    vpage = page_of(victim, count)
    key = page_key(east.keys, "east", count, vpage)
    old = s3.get_object(Bucket=east.store.bucket, Key=key)["Body"].read()
    east.write_cluster_status(victim, ClusterStatus(Role.SECONDARY, 1))
    _put(s3, east.store, key, old)  # someone puts the page back as it was (a restored backup)

    fresh = PeerReader(reader.store, "east", keys=KeySchema(key_prefix))
    snap = fresh.poll()
    with pytest.raises(DigestInconsistent, match=r"at sequence \d+ of a"):
        snap.status(victim)
    others = [a for a in apps if page_of(a, count) != vpage]
    assert all(snap.status(a) is not None for a in others)

    east.heartbeat(operator_version="t")  # looks at one page per heartbeat: rewrites what it finds changed
    for _ in range(count):
        east.heartbeat(operator_version="t")
    snap = fresh.poll()
    assert snap.status(victim).value.role == Role.SECONDARY  # type: ignore[union-attr]


def test_nudges_arriving_together_share_one_poll(east: Coordinator, reader: PeerReader, clock: Clock,
                                                 west_store: tuple[ObjectStore, Counter[str]]) -> None:
    _, counts = west_store
    east.heartbeat(operator_version="v")
    reader.snapshot()
    east.write_cluster_status(APP, ClusterStatus(Role.SECONDARY_READY, 1))
    clock.t += 0.3
    waits = [reader.invalidate(min_gap=1.0) for _ in range(20)]  # twenty nudges within the gap
    assert all(0 < w <= 0.7 + 1e-6 for w in waits)
    counts.clear()
    assert reader.snapshot().status(APP) is None  # within the gap: the poll before the news
    assert sum(counts.values()) == 0
    clock.t += 0.7
    assert reader.snapshot().status(APP).value.role == Role.SECONDARY_READY  # type: ignore[union-attr]
    polled = sum(counts.values())
    assert reader.snapshot() is not None and sum(counts.values()) == polled  # one poll for all twenty
    clock.t += 2
    assert reader.invalidate(min_gap=1.0) == 0  # the last poll is older than the gap: the next one polls
