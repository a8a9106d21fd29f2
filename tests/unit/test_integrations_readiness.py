"""The plugin generator's decision and request parsing, as tables of pure inputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.integrations.appset_plugin import BadRequest, Request, TokenFile, parse_request
from reconciler.integrations.readiness import ClusterView, decide, ready_cluster


def drc(ready: str | None, generation: int = 3, primary: str = "east") -> dict[str, Any]:
    conds = [] if ready is None else [{"type": "ReadyForApplication", "status": ready, "reason": "DataReady",
                                       "message": "m"}]
    return {"metadata": {"name": "app-dr", "generation": 2},
            "status": {"observedGeneration": 2, "generation": generation, "currentPrimary": primary,
                       "conditions": conds}}


def names(views: list[ClusterView]) -> list[str]:
    d = decide(views)
    assert d.problem is None
    return [r.cluster for r in d.ready]


def test_only_the_ready_cluster_is_named() -> None:
    assert names([ClusterView("east", drc("True")), ClusterView("west", drc("False", primary="east"))]) == ["east"]
    assert names([ClusterView("east", drc("False", 4, "west")), ClusterView("west", drc("True", 4, "west"))]) \
        == ["west"]


@pytest.mark.parametrize("status", ["False", "Unknown", None])
def test_nothing_ready_means_an_empty_answer(status: str | None) -> None:
    assert names([ClusterView("east", drc(status)), ClusterView("west", drc("False"))]) == []


def test_no_status_or_odd_status_is_not_ready() -> None:
    objs: list[dict[str, Any]] = [{"metadata": {}}, {"status": "x"}, {"status": {"conditions": "x"}},
                                  {"status": {"conditions": [None, {"type": "ReadyForApplication", "status": True}]}}]
    for obj in objs:
        assert ready_cluster(ClusterView("east", obj)) is None


def test_a_stale_primary_loses_to_the_higher_generation() -> None:
    # After a failover the partitioned old Primary still shows its frozen status.
    views = [ClusterView("east", drc("True", 3, "east")), ClusterView("west", drc("True", 4, "west"))]
    assert names(views) == ["west"]


def test_equal_generations_both_ready_is_refused() -> None:
    d = decide([ClusterView("east", drc("True", 4)), ClusterView("west", drc("True", 4))])
    assert d.problem is not None and "refusing" in d.problem and not d.ready


def test_missing_everywhere_is_not_found_missing_somewhere_is_not_ready() -> None:
    assert decide([ClusterView("east"), ClusterView("west")]).not_found
    d = decide([ClusterView("east"), ClusterView("west", drc("False"))])
    assert not d.not_found and d.ready == [] and d.problem is None


def test_unreadable_cluster_matters_only_when_nobody_readable_is_ready() -> None:
    d = decide([ClusterView("east", error="timed out"), ClusterView("west", drc("True", 5, "west"))])
    assert [r.cluster for r in d.ready] == ["west"] and d.unreadable == ["east"]
    d = decide([ClusterView("east", error="timed out"), ClusterView("west", drc("False"))])
    assert d.problem is not None and "east: timed out" in d.problem and not d.ready
    d = decide([ClusterView("east", error="timed out"), ClusterView("west")])
    assert d.problem is not None and not d.not_found


def test_parameters_are_flat_and_carry_the_dr_state() -> None:
    r = ready_cluster(ClusterView("west", drc("True", 7, "west")))
    assert r is not None
    assert r.parameters("ns", "app-dr") == {"cluster": "west", "namespace": "ns", "drcontrol": "app-dr",
                                             "currentPrimary": "west", "generation": 7, "observedGeneration": 2,
                                             "reason": "DataReady"}


def test_parse_request_accepts_argo_cd_bodies() -> None:
    body = b'{"applicationSetName": "my-app", "input": {"parameters": {"namespace": "my-app", "drcontrol": "a.b-c"}}}'
    assert parse_request(body) == Request("my-app", "my-app", "a.b-c")


@pytest.mark.parametrize("body", [
    b"", b"not json", b"\xff\xfe", b"[]", b'{"input": 1}', b'{"input": {"parameters": []}}',
    b'{"input": {"parameters": {"namespace": "ns"}}}',
    b'{"input": {"parameters": {"drcontrol": "x"}}}',
    b'{"input": {"parameters": {"namespace": "Bad_NS", "drcontrol": "x"}}}',
    b'{"input": {"parameters": {"namespace": "ns", "drcontrol": "x/../y"}}}',
    b'{"input": {"parameters": {"namespace": "ns", "drcontrol": 5}}}',
    b'{"applicationSetName": 1, "input": {"parameters": {"namespace": "ns", "drcontrol": "x"}}}',
])
def test_parse_request_rejects_malformed_bodies(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_request(body)


def test_token_file_compares_and_follows_rotation(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("s3cret\n")
    t = TokenFile(f)
    assert t.matches("Bearer s3cret")
    for bad in (None, "", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cretx", "Basic s3cret", "s3cret"):
        assert not t.matches(bad)
    f.write_text("rotated")
    os.utime(f, (1, 1))  # a distinct mtime even on coarse-grained filesystems
    assert t.matches("Bearer rotated") and not t.matches("Bearer s3cret")


def test_empty_token_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        TokenFile(f)
