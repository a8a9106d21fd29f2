"""The ApplicationSet refresher: a ReadyForApplication change refreshes the ApplicationSets that ask about it."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from reconciler.integrations.refresher import REFRESH_ANNOTATION, Refresher, asks_about, placement

CM = "ramen-p2p-appset-plugin"


def drc(ns: str, name: str, ready: bool | None, gen: int = 1) -> dict[str, Any]:
    conds = [] if ready is None else [{"type": "ReadyForApplication", "status": str(ready)}]
    return {"metadata": {"namespace": ns, "name": name}, "status": {"generation": gen, "conditions": conds}}


def appset(name: str, ns: str, drcontrol: str, configmap: str = CM, nested: bool = False) -> dict[str, Any]:
    plugin = {"plugin": {"configMapRef": {"name": configmap},
                         "input": {"parameters": {"namespace": ns, "drcontrol": drcontrol}}}}
    gens = [{"matrix": {"generators": [plugin, {"list": {"elements": []}}]}}] if nested else [plugin]
    return {"metadata": {"name": name}, "spec": {"generators": gens}}


class AppSets:
    def __init__(self, items: Sequence[Mapping[str, Any]]) -> None:
        self.items = list(items)
        self.annotated: list[tuple[str, str, str]] = []

    def list(self) -> Sequence[Mapping[str, Any]]:
        return self.items

    def annotate(self, name: str, key: str, value: str) -> None:
        self.annotated.append((name, key, value))


def test_placement_reads_readiness_and_generation() -> None:
    assert placement(drc("a", "b", True, 3)).ready and placement(drc("a", "b", True, 3)).generation == 3
    assert not placement(drc("a", "b", False)).ready
    assert not placement({"metadata": {}}).ready


def test_asks_about_matches_configmap_and_parameters_also_nested() -> None:
    assert asks_about(appset("x", "ns", "app"), CM, "ns", "app")
    assert asks_about(appset("x", "ns", "app", nested=True), CM, "ns", "app")
    assert not asks_about(appset("x", "ns", "other"), CM, "ns", "app")
    assert not asks_about(appset("x", "ns", "app", configmap="someone-else"), CM, "ns", "app")
    assert not asks_about({"metadata": {"name": "git"}, "spec": {"generators": [{"git": {}}]}}, CM, "ns", "app")


def test_first_sight_is_no_transition_and_a_flip_or_generation_change_is() -> None:
    r = Refresher({}, AppSets([]), CM)
    assert not r.observe("east", "ADDED", drc("ns", "app", False))
    assert not r.observe("east", "MODIFIED", drc("ns", "app", False)), "an unrelated status write"
    assert r.observe("east", "MODIFIED", drc("ns", "app", True))
    assert r.observe("east", "MODIFIED", drc("ns", "app", True, gen=2))
    assert not r.observe("west", "ADDED", drc("ns", "app", True)), "per cluster"


def test_refresh_annotates_only_the_matching_appsets() -> None:
    sets = AppSets([appset("mine", "ns", "app"), appset("theirs", "ns", "other"),
                    appset("nested", "ns", "app", nested=True)])
    r = Refresher({}, sets, CM)
    assert r.refresh("ns", "app") == 2
    assert sets.annotated == [("mine", REFRESH_ANNOTATION, "true"), ("nested", REFRESH_ANNOTATION, "true")]


def test_the_watch_loop_refreshes_on_a_flip_and_survives_a_failing_watch() -> None:
    sets = AppSets([appset("mine", "ns", "app")])
    calls = {"n": 0}
    done = threading.Event()

    def watch() -> Iterator[tuple[str, Mapping[str, Any]]]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("API server gone")
        yield "ADDED", drc("ns", "app", False)
        yield "MODIFIED", drc("ns", "app", True)
        done.set()
        threading.Event().wait(5)  # a watch that stays open

    r = Refresher({"east": watch}, sets, CM, retry=0.01)
    r.start()
    assert done.wait(5)
    r.stop()
    assert calls["n"] == 2, "a failed watch is started again"
    assert sets.annotated == [("mine", REFRESH_ANNOTATION, "true")]
