"""Patch computation: desired (a merge patch over live) -> the JSON patch to send, or nothing."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from reconciler.kube import guarded_ops, main_patch, merge, status_patch
from reconciler.kube.patch import creation_body

LIVE: dict[str, Any] = {
    "apiVersion": "test.ramen-p2p.io/v1",
    "kind": "Widget",
    "metadata": {
        "name": "w", "namespace": "ns", "uid": "u-1", "resourceVersion": "42", "generation": 3,
        "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "x"}],
        "labels": {"app": "a", "other-owner": "keep"},
    },
    "spec": {"size": 1, "defaulted": "by-server", "items": ["x", "y"]},
    "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_nothing_changed_means_no_ops() -> None:
    desired = {"apiVersion": "test.ramen-p2p.io/v1", "kind": "Widget",
               "metadata": {"name": "w", "namespace": "ns", "labels": {"app": "a"}},
               "spec": {"size": 1}, "status": {"phase": "Ready"}}
    assert main_patch(LIVE, desired) == []
    assert status_patch(LIVE, desired["status"]) == []


def test_server_owned_metadata_and_server_defaults_are_left_alone() -> None:
    desired = {"metadata": {"name": "w", "resourceVersion": "1", "uid": "other", "generation": 9,
                            "managedFields": []}, "spec": {"size": 1}}
    assert main_patch(LIVE, desired) == []


def test_changed_fields_become_minimal_ops_that_reach_the_target() -> None:
    desired = {"metadata": {"labels": {"app": "b"}}, "spec": {"size": 2}}
    ops = main_patch(LIVE, desired)
    assert sorted((op["op"], op["path"]) for op in ops) == [
        ("replace", "/metadata/labels/app"), ("replace", "/spec/size")]
    result = jsonpatch.apply_patch(LIVE, ops)
    assert result["spec"] == {"size": 2, "defaulted": "by-server", "items": ["x", "y"]}
    assert result["metadata"]["labels"] == {"app": "b", "other-owner": "keep"}


def test_none_removes_a_field_and_lists_are_replaced_whole() -> None:
    desired = {"metadata": {"labels": {"other-owner": None}}, "spec": {"items": ["z"]}}
    result = jsonpatch.apply_patch(LIVE, main_patch(LIVE, desired))
    assert "other-owner" not in result["metadata"]["labels"]
    assert result["spec"]["items"] == ["z"]


def test_status_ops_are_under_status_and_main_ops_never_touch_it() -> None:
    desired = {"spec": {"size": 1}, "status": {"phase": "Failing"}}
    assert main_patch(LIVE, desired) == []
    ops = status_patch(LIVE, desired["status"])
    assert ops == [{"op": "replace", "path": "/status/phase", "value": "Failing"}]
    no_status = {k: v for k, v in LIVE.items() if k != "status"}
    assert status_patch(no_status, {"phase": "New"}) == [{"op": "add", "path": "/status", "value": {"phase": "New"}}]
    assert status_patch(LIVE, None) == []


def test_guard_is_a_leading_test_of_the_live_resource_version() -> None:
    ops = guarded_ops(LIVE, [{"op": "replace", "path": "/spec/size", "value": 2}])
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    assert len(ops) == 2


def test_inputs_are_not_mutated() -> None:
    live, desired = copy.deepcopy(LIVE), {"metadata": {"labels": {"app": None}}, "spec": {"size": 5}}
    before = copy.deepcopy(desired)
    main_patch(live, desired)
    status_patch(live, {"phase": "x"})
    assert live == LIVE and desired == before


def test_merge_follows_rfc7386() -> None:
    assert merge({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == {
        "a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
    assert merge({"a": 1}, "scalar") == "scalar"


def test_creation_body_drops_status_when_a_subresource_owns_it() -> None:
    desired = {"metadata": {"name": "w", "resourceVersion": "3", "labels": {"x": None}}, "spec": {}, "status": {"a": 1}}
    assert creation_body(desired, status_subresource=True) == {"metadata": {"name": "w", "labels": {}}, "spec": {}}
    assert "status" in creation_body(desired, status_subresource=False)


def test_replacing_states_the_removals_a_merge_patch_needs() -> None:
    from reconciler.kube.patch import merge, replacing

    old = {"a": 1, "sel": {"matchLabels": {"x": "1", "y": "2"}}, "gone": True}
    new = {"a": 2, "sel": {"matchLabels": {"x": "1"}}}
    assert merge(old, replacing(old, new)) == new
    assert replacing(old, None) is None
    assert replacing(None, {"k": 1}) == {"k": 1}
