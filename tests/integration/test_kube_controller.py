"""The controller stack against the shared API server: cache-only reads, no-op writes, conflicts, events, bookmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from e2e.localenv.clients import Cluster
from e2e.widgets import widget_kind
from reconciler.kube import (
    EVENTS,
    NORMAL,
    READ_VERBS,
    RECONCILE_ORIGIN,
    WRITE_VERBS,
    Applier,
    Cache,
    Controller,
    EventRecorder,
    Informer,
    KubeClient,
    Result,
    request_origin,
    resource_version,
    split_key,
)
from reconciler.kube.crds import ensure_crd
from reconciler.kube.echoes import Echoes
from reconciler.kube.informer import Event, EventType, resync_slot

pytestmark = pytest.mark.realenv

WIDGETS, WIDGET_CRD = widget_kind("test.ramen-p2p.io")


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def kube(east: Cluster, namespace: str) -> KubeClient:
    client = KubeClient(east.api)
    ensure_crd(client, WIDGET_CRD)
    return client


def make_widgets(client: KubeClient, namespace: str, n: int) -> list[str]:
    names = [f"w{i}" for i in range(n)]
    for name in names:
        client.create(WIDGETS, {"apiVersion": WIDGETS.api_version, "kind": "Widget",
                                "metadata": {"name": name, "namespace": namespace}, "spec": {"size": 3}})
    return names


class DoublingReconciler:
    """status.double = 2 * spec.size, reading only from the cache and writing with the applier."""

    def __init__(self, cache: Cache, applier: Applier) -> None:
        self.cache, self.applier = cache, applier

    def __call__(self, key: str) -> Result:
        ns, name = split_key(key)
        live = self.cache.get(WIDGETS, name, ns)
        if live is None:
            return Result()
        self.applier.apply(WIDGETS, {"status": {"double": 2 * live["spec"]["size"]}}, live)
        return Result()


@pytest.fixture
def doubling(kube: KubeClient, namespace: str) -> Iterator[tuple[Controller, KubeClient, Applier, list[str]]]:
    names = make_widgets(kube, namespace, 10)
    cache = Cache(kube)
    applier = Applier(kube)
    ctl = Controller("doubling", DoublingReconciler(cache, applier), cache, workers=2)
    ctl.watch(WIDGETS, namespace=namespace)
    ctl.start()
    try:
        wait_until(lambda: all((cache.get(WIDGETS, n, namespace) or {}).get("status", {}).get("double") == 6
                               for n in names), what="every widget to be reconciled")
        yield ctl, kube, applier, names
    finally:
        ctl.stop()
        cache.stop()


def settle(ctl: Controller) -> None:
    wait_until(lambda: len(ctl.queue) == 0 and ctl.queue.processing() == 0 and ctl.queue.pending_delayed() == 0,
               what="the queue to drain")


def test_noop_reconcile_sends_zero_write_requests(doubling: tuple[Controller, KubeClient, Applier, list[str]],
                                                  namespace: str) -> None:
    ctl, client, applier, names = doubling
    settle(ctl)
    time.sleep(0.5)  # the watch events of our own status writes come back as one more round of reconciles
    settle(ctl)
    writes_before, applier_before, reconciles_before = client.stats.writes, applier.writes, ctl.stats.reconciles
    assert writes_before >= len(names)  # the counter does see writes: at least one status patch per widget

    for _ in range(3):
        for name in names:
            ctl.queue.add(f"{namespace}/{name}")
        settle(ctl)

    assert ctl.stats.reconciles >= reconciles_before + 3 * len(names)  # the queue was idle before each round
    assert client.stats.writes == writes_before, "a reconcile with nothing to change sent a write"
    assert applier.writes == applier_before


def test_controller_reads_through_the_cache_only(doubling: tuple[Controller, KubeClient, Applier, list[str]],
                                                namespace: str) -> None:
    ctl, client, _, names = doubling
    client.merge_patch(WIDGETS, names[0], namespace, {"spec": {"size": 5}})
    wait_until(lambda: ctl.cache.get(WIDGETS, names[0], namespace)["status"]["double"] == 10,  # type: ignore[index]
               what="the changed widget to be reconciled")
    settle(ctl)

    assert ctl.stats.reconciles >= len(names) + 1
    assert client.stats.count(WRITE_VERBS, origin=RECONCILE_ORIGIN) >= len(names) + 1
    assert client.stats.count(READ_VERBS, origin=RECONCILE_ORIGIN) == 0, client.stats.snapshot()
    # The informer did the reading: one list, one or more watches.
    assert client.stats.count({"list"}, origin="informer") >= 1
    # And the counter would have caught a reconcile reading the API.
    with request_origin(RECONCILE_ORIGIN):
        client.get(WIDGETS, names[0], namespace)
    assert client.stats.count(READ_VERBS, origin=RECONCILE_ORIGIN) == 1


def test_concurrent_writers_conflict_and_retry_to_the_right_result(kube: KubeClient, namespace: str) -> None:
    """Two controllers (separate clients and caches) each add their name to status.writers.

    Both read the same version of each widget before writing, so one of them
    must lose the guarded patch; it retries from its cache and adds its name
    without dropping the other's.
    """
    names = make_widgets(kube, namespace, 6)
    barriers = {n: threading.Barrier(2, timeout=10) for n in names}
    controllers: list[Controller] = []

    def writer(me: str, cache: Cache, applier: Applier) -> Callable[[str], Result]:
        first_attempt = set(names)

        def reconcile(key: str) -> Result:
            ns, name = split_key(key)
            live = cache.get(WIDGETS, name, ns)
            assert live is not None
            if name in first_attempt:
                first_attempt.discard(name)
                barriers[name].wait()  # both writers now hold the same resourceVersion
            writers = (live.get("status") or {}).get("writers", [])
            if me not in writers:
                applier.apply(WIDGETS, {"status": {"writers": [*writers, me]}}, live)
            return Result()

        return reconcile

    for me in ("alpha", "beta"):
        client = KubeClient(kube.api_client)
        cache = Cache(client)
        # One worker per widget, so both writers can wait at every barrier at once.
        ctl = Controller(me, writer(me, cache, Applier(client)), cache, workers=len(names))
        ctl.watch(WIDGETS, namespace=namespace)
        controllers.append(ctl)
    try:
        for ctl in controllers:
            ctl.cache.start()
        for ctl in controllers:
            ctl.start()

        def done() -> bool:
            objs = kube.list(WIDGETS, namespace)["items"]
            return all(sorted((o.get("status") or {}).get("writers", [])) == ["alpha", "beta"] for o in objs)

        wait_until(done, what="both writers on every widget")
        conflicts = sum(c.stats.conflicts for c in controllers)
        assert conflicts >= len(names), "each widget's first round must produce a conflict"
        for o in kube.list(WIDGETS, namespace)["items"]:
            assert len(o["status"]["writers"]) == 2  # no lost update, no duplicate
    finally:
        for ctl in controllers:
            ctl.stop()
            ctl.cache.stop()


@pytest.mark.parametrize("senders", [0, 2], ids=["inline", "queued"])
def test_event_recorder_folds_repeats(kube: KubeClient, namespace: str, senders: int) -> None:
    widget = kube.create(WIDGETS, {"apiVersion": WIDGETS.api_version, "kind": "Widget",
                                   "metadata": {"name": "evt", "namespace": namespace}, "spec": {"size": 1}})
    recorder = EventRecorder(kube, component="ramen-test", senders=senders)
    for _ in range(3):
        recorder.event(widget, NORMAL, "Protected", "data is protected")
    recorder.event(widget, NORMAL, "Protected", "a different message")
    assert recorder.flush(timeout=10)
    recorder.stop()

    events = kube.list(EVENTS, namespace)["items"]
    by_message = {e["message"]: e for e in events}
    assert len(events) == 2
    folded = by_message["data is protected"]
    assert folded["count"] == 3
    assert folded["involvedObject"]["name"] == "evt" and folded["involvedObject"]["kind"] == "Widget"
    assert folded["lastTimestamp"] >= folded["firstTimestamp"]
    assert by_message["a different message"]["count"] == 1


def test_resource_version_follows_bookmarks(kube: KubeClient, namespace: str) -> None:
    make_widgets(kube, namespace, 1)
    inf = Informer(kube, WIDGETS, namespace=namespace, watch_timeout=3)
    inf.start()
    other = f"elsewhere-{namespace}"
    try:
        assert inf.wait_for_sync(10)
        last_seen_rv = max(int(resource_version(o)) for o in inf.store.list())
        # A widget in another namespace moves the widgets' resourceVersion on without an event for this
        # namespace-scoped watch: only a bookmark can carry it here.
        kube.create(WIDGETS, {"apiVersion": WIDGETS.api_version, "kind": "Widget",
                              "metadata": {"name": other, "namespace": "default"}, "spec": {"size": 1}})
        wait_until(lambda: inf.stats.bookmarks >= 1 and int(inf.resource_version) > last_seen_rv, timeout=15,
                   what="a bookmark with a newer resourceVersion")
        # The short watch ends; the next one resumes from the bookmarked version without a re-list.
        wait_until(lambda: inf.stats.watches >= 2 and inf.is_watching(), timeout=15, what="the next watch")
        assert inf.stats.events == 0 and inf.stats.lists == 1 and inf.stats.gone == 0
    finally:
        inf.stop()
        kube.delete(WIDGETS, other, "default")


def test_cached_objects_drop_managed_fields_listed_or_watched(kube: KubeClient, namespace: str) -> None:
    make_widgets(kube, namespace, 1)
    assert kube.get(WIDGETS, "w0", namespace)["metadata"].get("managedFields"), "the server tracks field owners"
    inf = Informer(kube, WIDGETS, namespace=namespace)
    inf.start()
    try:
        assert inf.wait_for_sync(10)
        (listed,) = inf.store.list()
        assert "managedFields" not in listed["metadata"]
        desired = {**listed, "spec": {"size": 4}}
        Applier(kube).apply(WIDGETS, desired, listed)
        wait_until(lambda: inf.store.list()[0]["spec"]["size"] == 4, what="the watch event of the patch")
        assert "managedFields" not in inf.store.list()[0]["metadata"]
    finally:
        inf.stop()


def test_the_echo_of_a_reconciles_own_write_triggers_no_reconcile_and_a_change_by_others_does(
        kube: KubeClient, namespace: str) -> None:
    names = make_widgets(kube, namespace, 3)
    cache = Cache(kube)
    echoes = Echoes()
    applier = Applier(kube, echoes)
    reconciled: list[str] = []

    def reconcile(key: str) -> Result:
        reconciled.append(key)
        return DoublingReconciler(cache, applier)(key)

    ctl = Controller("echoes", reconcile, cache, workers=1)
    ctl.watch(WIDGETS, echoes.unless_echo(WIDGETS), namespace=namespace)
    ctl.start()
    try:
        wait_until(lambda: all((cache.get(WIDGETS, n, namespace) or {}).get("status", {}).get("double") == 6
                               for n in names), what="every widget to be reconciled")
        settle(ctl)
        time.sleep(0.5)  # room for the echoes of the status writes to arrive and be dropped
        settle(ctl)
        assert sorted(reconciled) == sorted(f"{namespace}/{n}" for n in names)  # once each, no echo round
        kube.merge_patch(WIDGETS, names[0], namespace, {"spec": {"size": 5}})
        wait_until(lambda: cache.get(WIDGETS, names[0], namespace)["status"]["double"] == 10,  # type: ignore[index]
                   what="the widget changed by someone else to be reconciled")
        settle(ctl)
        assert reconciled.count(f"{namespace}/{names[0]}") == 2
    finally:
        ctl.stop()
        cache.stop()


def test_a_resync_delivers_every_object_once_per_period_spread_over_it(kube: KubeClient, namespace: str) -> None:
    names = make_widgets(kube, namespace, 30)
    inf = Informer(kube, WIDGETS, namespace=namespace, resync_period=3.0)
    seen: list[tuple[float, str]] = []
    lock = threading.Lock()

    def record(event: Event) -> None:
        if event.type == EventType.RESYNC:
            with lock:
                seen.append((time.monotonic(), event.key))

    inf.add_handler(record)
    inf.start()
    try:
        assert inf.wait_for_sync(10)
        wait_until(lambda: {k for _, k in seen} == {f"{namespace}/{n}" for n in names}, timeout=10,
                   what="every widget to be resynced")
        with lock:
            first: dict[str, float] = {}
            for t, k in seen:
                first.setdefault(k, t)
        # Not one burst: the first deliveries spread over more than half of the period.
        assert max(first.values()) - min(first.values()) > 1.5
        assert len({resync_slot(k) for k in first}) > 10
    finally:
        inf.stop()


def test_a_reconcile_woken_only_by_the_resync_is_told_it_is_routine(kube: KubeClient, namespace: str) -> None:
    names = make_widgets(kube, namespace, 3)
    cache = Cache(kube, resync_period=2.0)
    seen: list[tuple[str, bool]] = []
    lock = threading.Lock()
    ctl: Controller

    def reconcile(key: str) -> Result:
        with lock:
            seen.append((key, ctl.queue.routine(key)))
        return Result()

    ctl = Controller("routine", reconcile, cache, workers=1)
    ctl.watch(WIDGETS, namespace=namespace)
    ctl.start()
    try:
        keys = {f"{namespace}/{n}" for n in names}
        wait_until(lambda: {k for k, r in seen if r} == keys, timeout=15, what="every widget to be resynced")
        with lock:
            assert {k for k, r in seen[:3]} == keys and not any(r for _, r in seen[:3])  # the first list is news
        kube.merge_patch(WIDGETS, names[0], namespace, {"spec": {"size": 9}})
        wait_until(lambda: any(k == f"{namespace}/{names[0]}" and not r for k, r in seen[3:]), timeout=10,
                   what="the change to be reconciled as news")
    finally:
        ctl.stop()
        cache.stop()
