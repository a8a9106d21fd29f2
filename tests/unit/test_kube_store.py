"""The cache store: keys, the namespace index, custom indexes, and re-list diffs."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.kube import NAMESPACE_INDEX, Store, object_key, split_key


def obj(name: str, ns: str | None = "ns1", rv: str = "1", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": rv, "labels": labels}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "spec": {}}


def by_policy(o: dict[str, Any]) -> list[str]:
    p = o["metadata"].get("labels", {}).get("policy")
    return [p] if p else []


def test_keys_follow_client_go() -> None:
    assert object_key(obj("a", "ns1")) == "ns1/a"
    assert object_key(obj("fence", None)) == "fence"
    assert split_key("ns1/a") == ("ns1", "a")
    assert split_key("fence") == (None, "fence")


def test_upsert_get_delete() -> None:
    s = Store()
    assert s.upsert(obj("a")) is None
    old = s.upsert(obj("a", rv="2"))
    assert old is not None and old["metadata"]["resourceVersion"] == "1"
    got = s.get("ns1/a")
    assert got is not None and got["metadata"]["resourceVersion"] == "2"
    assert s.get_by_name("a", "ns1") == got
    assert "ns1/a" in s and len(s) == 1
    assert s.delete("ns1/a") is not None
    assert s.get("ns1/a") is None and len(s) == 0


def test_reads_are_copies_so_callers_cannot_corrupt_the_cache() -> None:
    s = Store()
    s.upsert(obj("a"))
    got = s.get("ns1/a")
    assert got is not None
    got["spec"]["mutated"] = True
    s.list()[0]["spec"]["mutated"] = True
    assert s.get("ns1/a") == obj("a")


def test_namespace_index_and_list_by_namespace() -> None:
    s = Store()
    for o in (obj("a", "ns1"), obj("b", "ns1"), obj("c", "ns2"), obj("cluster-scoped", None)):
        s.upsert(o)
    assert [o["metadata"]["name"] for o in s.list("ns1")] == ["a", "b"]
    assert [o["metadata"]["name"] for o in s.by_index(NAMESPACE_INDEX, "ns2")] == ["c"]
    assert len(s.list()) == 4
    s.delete("ns1/a")
    assert s.index_keys(NAMESPACE_INDEX, "ns1") == ["ns1/b"]


def test_custom_index_follows_updates_and_deletes() -> None:
    s = Store({"policy": by_policy})
    s.upsert(obj("a", policy="p1"))
    s.upsert(obj("b", policy="p1"))
    s.upsert(obj("c", policy="p2"))
    assert s.index_keys("policy", "p1") == ["ns1/a", "ns1/b"]
    s.upsert(obj("a", rv="2", policy="p2"))  # moves to another index value
    assert s.index_keys("policy", "p1") == ["ns1/b"]
    assert s.index_keys("policy", "p2") == ["ns1/a", "ns1/c"]
    s.delete("ns1/c")
    assert s.index_keys("policy", "p2") == ["ns1/a"]
    with pytest.raises(KeyError):
        s.by_index("nope", "x")


def test_an_indexer_added_later_indexes_existing_objects() -> None:
    s = Store()
    s.upsert(obj("a", policy="p1"))
    s.add_indexer("policy", by_policy)
    assert s.index_keys("policy", "p1") == ["ns1/a"]
    with pytest.raises(ValueError):
        s.add_indexer("policy", by_policy)


def test_replace_reports_adds_updates_and_vanished_objects_only() -> None:
    s = Store({"policy": by_policy})
    for o in (obj("keep"), obj("change", policy="p1"), obj("gone", policy="p1")):
        s.upsert(o)
    delta = s.replace([obj("keep"), obj("change", rv="5", policy="p2"), obj("new")])
    assert [o["metadata"]["name"] for o in delta.added] == ["new"]
    assert [(old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"])
            for old, new in delta.updated] == [("1", "5")]
    assert [o["metadata"]["name"] for o in delta.deleted] == ["gone"]
    assert sorted(s.keys()) == ["ns1/change", "ns1/keep", "ns1/new"]
    assert s.index_keys("policy", "p1") == []
    assert s.index_keys("policy", "p2") == ["ns1/change"]
