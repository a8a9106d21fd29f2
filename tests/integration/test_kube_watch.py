"""Informer behaviour against a real kube-apiserver that is restarted and compacted.

Each test runs on a private cluster: stopping its apiserver or compacting its
etcd never disturbs the shared clusters.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import config

from e2e.localenv import LocalEnv
from e2e.widgets import widget_kind
from reconciler.kube import NAMESPACES, Backoff, Event, EventType, Informer, KubeClient
from reconciler.kube.crds import ensure_crd

pytestmark = pytest.mark.realenv

WIDGETS, WIDGET_CRD = widget_kind("test.ramen-p2p.io")
NS = "watch-test"


def widget(name: str, size: int = 1) -> dict[str, Any]:
    return {"apiVersion": WIDGETS.api_version, "kind": "Widget",
            "metadata": {"name": name, "namespace": NS}, "spec": {"size": size}}


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def etcd(env: LocalEnv, call: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request to etcd's v3 JSON gateway."""
    url = f"http://127.0.0.1:{env.components['solo-etcd'].port}/v3/{call}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def since(self, n: int) -> list[tuple[EventType, str, bool]]:
        return [(e.type, e.obj["metadata"]["name"], e.synthetic) for e in self.events[n:]]


@pytest.fixture
def solo(private_env: Callable[[list[str]], LocalEnv]) -> tuple[LocalEnv, KubeClient]:
    env = private_env(["solo"])
    client = KubeClient(config.new_client_from_config(config_file=str(env.kubeconfig("solo"))))
    ensure_crd(client, WIDGET_CRD)
    client.create(NAMESPACES, {"metadata": {"name": NS}})
    return env, client


def start_informer(client: KubeClient) -> tuple[Informer, Recorder]:
    inf = Informer(client, WIDGETS, namespace=NS, backoff=Backoff(initial=0.2, cap=1.0))
    rec = Recorder()
    inf.add_handler(rec)
    inf.start()
    assert inf.wait_for_sync(10)
    return inf, rec


def cached_names(inf: Informer) -> set[str]:
    return {o["metadata"]["name"] for o in inf.store.list()}


def test_watch_is_continuous_across_apiserver_restart(solo: tuple[LocalEnv, KubeClient]) -> None:
    env, client = solo
    for i in range(5):
        client.create(WIDGETS, widget(f"w{i}"))
    inf, rec = start_informer(client)
    try:
        assert cached_names(inf) == {f"w{i}" for i in range(5)}
        assert [t for t, _, _ in rec.since(0)] == [EventType.ADDED] * 5

        client.merge_patch(WIDGETS, "w0", NS, {"spec": {"size": 2}})
        wait_until(lambda: len(rec.events) == 6, what="the update before the restart")
        mark = len(rec.events)
        watches_before = inf.stats.watches

        env.stop("solo-apiserver")
        wait_until(lambda: inf.stats.errors >= 1, what="the informer to notice the outage")
        env.start("solo-apiserver")
        wait_until(inf.is_watching, what="the watch to be re-established")
        # Reconnecting (whether it resumed the watch or had to re-list) replays nothing.
        assert rec.since(mark) == []

        client.create(WIDGETS, widget("w5"))
        client.merge_patch(WIDGETS, "w1", NS, {"spec": {"size": 7}})
        client.delete(WIDGETS, "w2", NS)
        wait_until(lambda: len(rec.events) >= mark + 3, what="the changes after the restart")
        time.sleep(0.3)  # room for any stray event to show up before the exact comparison
        assert rec.since(mark) == [
            (EventType.ADDED, "w5", False),
            (EventType.UPDATED, "w1", False),
            (EventType.DELETED, "w2", False),
        ]
        assert inf.stats.watches > watches_before  # the watch was re-established
        live = client.list(WIDGETS, NS)
        assert {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in live["items"]} == {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in inf.store.list()
        }
        print(f"informer stats across restart: {inf.stats}")
    finally:
        inf.stop()


def test_gone_relists_and_emits_synthetic_deletes(solo: tuple[LocalEnv, KubeClient]) -> None:
    env, client = solo
    for i in range(6):
        client.create(WIDGETS, widget(f"w{i}"))
    inf, rec = start_informer(client)
    try:
        assert cached_names(inf) == {f"w{i}" for i in range(6)}
        mark = len(rec.events)

        # While the watch is down, objects vanish behind its back and etcd forgets the history.
        env.stop("solo-apiserver")
        prefix = f"/registry-solo/{WIDGETS.group}/{WIDGETS.plural}/{NS}/"
        for name in ("w1", "w3"):
            assert etcd(env, "kv/deleterange", {"key": b64(prefix + name)}).get("deleted") == "1"
        revision = int(etcd(env, "kv/range", {"key": b64(prefix), "count_only": True})["header"]["revision"])
        etcd(env, "kv/compaction", {"revision": revision, "physical": True})
        env.start("solo-apiserver")

        wait_until(lambda: cached_names(inf) == {"w0", "w2", "w4", "w5"}, what="the re-list")
        assert inf.stats.gone >= 1, "the watch resumed without a 410"
        assert inf.stats.lists == 2
        assert sorted(rec.since(mark), key=lambda t: t[1]) == [
            (EventType.DELETED, "w1", True),
            (EventType.DELETED, "w3", True),
        ]
        # The watch after the re-list works: a later change arrives as a normal event.
        client.merge_patch(WIDGETS, "w0", NS, {"spec": {"size": 9}})
        wait_until(lambda: len(rec.events) == mark + 3, what="an event after the re-list")
        assert rec.since(mark + 2) == [(EventType.UPDATED, "w0", False)]
    finally:
        inf.stop()
