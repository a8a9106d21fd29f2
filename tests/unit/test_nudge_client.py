"""The nudger reads the peer's Secret at most once per recheck interval, and again at once after
the peer refused the credentials (rotated); nudges to a peer are coalesced."""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from reconciler.controllers.nudge import PeerNudger
from reconciler.kube import KubeClient
from reconciler.kube.errors import ApiError

SERVER = "https://peer.example:6443"
EP = {"apiServer": SERVER, "secretRef": {"namespace": "ops", "name": "peer"}}


def secret(version: str, token: str = "t0") -> dict[str, Any]:
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "p",
           "contexts": [{"name": "p", "context": {"cluster": "p", "user": "p"}}],
           "clusters": [{"name": "p", "cluster": {"server": SERVER}}],
           "users": [{"name": "p", "user": {"token": token}}]}
    data = base64.b64encode(yaml.safe_dump(cfg).encode()).decode()
    return {"metadata": {"name": "peer", "namespace": "ops", "resourceVersion": version},
            "data": {"kubeconfig": data}}


class Env:
    def __init__(self) -> None:
        self.t = 100.0
        self.reads = 0
        self.version = "1"

    def read_secret(self, namespace: str, name: str) -> dict[str, Any]:
        assert (namespace, name) == ("ops", "peer")
        self.reads += 1
        return secret(self.version)


@pytest.fixture
def env() -> Env:
    return Env()


@pytest.fixture
def nudger(env: Env) -> Iterator[PeerNudger]:
    n = PeerNudger(cache=None, read_secret=env.read_secret, secret_recheck=30.0,  # type: ignore[arg-type]
                   monotonic=lambda: env.t)
    yield n
    n.stop()


class HeldFirst:
    """The peer's API server as the nudger sees it: records each nudged name, holds the first nudge
    in flight until `release` is set, and answers 404 for the names in `missing`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, nudger: PeerNudger, missing: tuple[str, ...] = ()) -> None:
        self.calls: list[str] = []
        self.first_sent, self.release = threading.Event(), threading.Event()
        self.missing = missing
        monkeypatch.setattr(KubeClient, "merge_patch", self.patch)
        monkeypatch.setattr(nudger, "_endpoint", lambda peer: EP)

    def patch(self, rt: Any, name: str, *a: Any, **kw: Any) -> Any:
        self.calls.append(name)
        if not self.first_sent.is_set():
            self.first_sent.set()
            assert self.release.wait(5)
        if name in self.missing:
            raise ApiError(404, "NotFound", f'drcontrols.ramendr.openshift.io "{name}" not found')
        return {}


def wait_idle(nudger: PeerNudger) -> None:
    deadline = time.monotonic() + 5
    while nudger._busy and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_secret_is_read_once_per_recheck_interval(env: Env, nudger: PeerNudger) -> None:
    first = nudger._client("west", EP)
    for _ in range(50):
        assert nudger._client("west", EP) is first
    assert env.reads == 1
    env.t += 31
    assert nudger._client("west", EP) is first  # read again, unchanged: the same client
    assert env.reads == 2
    env.version = "2"
    env.t += 31
    assert nudger._client("west", EP) is not first
    assert env.reads == 3


def test_refused_credentials_make_the_next_nudge_read_the_secret(env: Env, nudger: PeerNudger,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    nudger._client("west", EP)

    def refuse(self: KubeClient, *a: Any, **kw: Any) -> Any:
        raise ApiError(401, "Unauthorized", "token expired")

    monkeypatch.setattr(KubeClient, "merge_patch", refuse)
    nudger._send("west", EP, "ns", "app")
    assert nudger.failed == 1
    nudger._client("west", EP)
    assert env.reads == 2


def test_a_peer_that_does_not_answer_is_not_nudged_again_for_a_while(env: Env, monkeypatch: pytest.MonkeyPatch
                                                                      ) -> None:
    # One sender thread, so a no-op submitted after a send runs after it.
    nudger = PeerNudger(cache=None, read_secret=env.read_secret, workers=1,  # type: ignore[arg-type]
                        monotonic=lambda: env.t)
    calls: list[str] = []

    def unreachable(self: KubeClient, rt: Any, name: str, *a: Any, **kw: Any) -> Any:
        calls.append(name)
        raise ApiError(0, "", "connection refused")

    monkeypatch.setattr(KubeClient, "merge_patch", unreachable)
    monkeypatch.setattr(nudger, "_endpoint", lambda peer: EP)
    nudger.nudge("west", "ns", "a")
    nudger._pool.submit(lambda: None).result(5)  # the first send has run
    for name in ("b", "c", "d"):
        nudger.nudge("west", "ns", name)
    nudger._pool.submit(lambda: None).result(5)
    assert calls == ["a"] and nudger.skipped == 3
    env.t += 11  # the pause is over: the next report tries again
    nudger.nudge("west", "ns", "e")
    nudger._pool.submit(lambda: None).result(5)
    assert calls == ["a", "e"]
    nudger.stop()


def test_writes_made_while_a_nudge_is_sent_are_told_by_one_more_nudge(env: Env, monkeypatch: pytest.MonkeyPatch
                                                                        ) -> None:
    # The peer polls and reconciles every app it finds changed, so one nudge tells of every write
    # before it: 1,000 writes must not be 1,000 PATCHes to the peer's API server.
    nudger = PeerNudger(cache=None, read_secret=env.read_secret, workers=1,  # type: ignore[arg-type]
                        monotonic=lambda: env.t, send_gap=0.2)
    peer = HeldFirst(monkeypatch, nudger)
    nudger.nudge("west", "ns", "a")
    assert peer.first_sent.wait(5)
    for name in ("b", "c", "d"):  # while "a" is in flight
        nudger.nudge("west", "ns", name)
    peer.release.set()
    nudger._pool.submit(lambda: None).result(5)  # the sender ran dry
    assert peer.calls == ["a", "d"], "the writes after the first are told by one nudge naming the latest"
    assert nudger.sent == 2 and nudger.coalesced == 2
    nudger.nudge("west", "ns", "e")  # nothing in flight: sent at once
    nudger._pool.submit(lambda: None).result(5)
    assert peer.calls == ["a", "d", "e"]
    nudger.stop()


def test_nudges_to_one_peer_are_at_least_the_gap_apart(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    nudger = PeerNudger(cache=None, read_secret=env.read_secret, workers=2,  # type: ignore[arg-type]
                        monotonic=lambda: env.t, send_gap=0.3)
    sent_at: list[float] = []
    def patch(*a: Any, **kw: Any) -> Any:
        sent_at.append(time.monotonic())
        return {}

    monkeypatch.setattr(KubeClient, "merge_patch", patch)
    monkeypatch.setattr(nudger, "_endpoint", lambda peer: EP)
    for i in range(6):
        nudger.nudge("west", "ns", f"app-{i}")
        time.sleep(0.1)
    wait_idle(nudger)
    assert 2 <= len(sent_at) <= 3, sent_at
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(sent_at)), sent_at
    nudger.stop()


def test_a_coalesced_nudge_whose_app_the_peer_lacks_goes_to_the_app_written_before(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # The nudge names the latest write's app, but tells of every write before it: if the peer has
    # no DRControl for that app (not protected there yet), the writes before it must still be told.
    nudger = PeerNudger(cache=None, read_secret=env.read_secret, workers=1,  # type: ignore[arg-type]
                        monotonic=lambda: env.t, send_gap=0.05)
    peer = HeldFirst(monkeypatch, nudger, missing=("new",))
    nudger.nudge("west", "ns", "a")
    assert peer.first_sent.wait(5)
    nudger.nudge("west", "ns", "b")
    nudger.nudge("west", "ns", "new")  # the latest write is of an app the peer does not have
    peer.release.set()
    wait_idle(nudger)
    assert peer.calls == ["a", "new", "b"], peer.calls
    assert nudger.sent == 2 and nudger.failed == 0
    nudger.stop()
