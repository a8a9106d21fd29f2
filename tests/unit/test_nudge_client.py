"""The nudger reads the peer's Secret at most once per recheck interval, and again at once after
the peer refused the credentials (rotated)."""

from __future__ import annotations

import base64
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
