"""Request shapes (moto): which conditional headers each operation sends, and how many requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler.s3peer import Action, AppKey, ClusterStatus, Coordinator, ObjectStore, Role

APP = AppKey("ns", "app")


@pytest.fixture
def recorded() -> Iterator[tuple[Coordinator, list[tuple[str, dict[str, str]]]]]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="ramen-unit")
        seen: list[tuple[str, dict[str, str]]] = []

        def hook(request: Any, event_name: str, **_: Any) -> None:
            operation_name = event_name.rsplit(".", 1)[-1]
            hdrs = {k.lower(): v for k, v in request.headers.items()
                    if k.lower() in ("if-match", "if-none-match")}
            seen.append((operation_name, {k: v.decode() if isinstance(v, bytes) else v for k, v in hdrs.items()}))

        client.meta.events.register("before-send.s3", hook)
        yield Coordinator(ObjectStore(client, "ramen-unit"), "east"), seen


def test_initial_claim_sends_if_none_match_star(recorded: tuple[Coordinator, list[Any]]) -> None:
    me, seen = recorded
    assert me.claim_initial(APP).won
    assert ("PutObject", {"if-none-match": "*"}) in seen


def test_transition_sends_if_match_with_the_etag_read(recorded: tuple[Coordinator, list[Any]]) -> None:
    me, seen = recorded
    other = Coordinator(me.store, "west")
    first = other.claim_initial(APP).current
    assert first is not None
    seen.clear()
    assert me.transition(APP, first, Action.FAILOVER).won
    assert seen == [("PutObject", {"if-match": first.etag})]


def test_unchanged_cluster_status_sends_nothing(recorded: tuple[Coordinator, list[Any]]) -> None:
    me, seen = recorded
    st = ClusterStatus(Role.SECONDARY, 1)
    assert me.write_cluster_status(APP, st)
    seen.clear()
    assert not me.write_cluster_status(APP, st)
    assert seen == []


def test_dr_state_reread_is_etag_conditional(recorded: tuple[Coordinator, list[Any]]) -> None:
    me, seen = recorded
    rec = me.claim_initial(APP).current
    assert rec is not None
    seen.clear()
    assert me.read_dr_state(APP) == rec
    assert seen == [("GetObject", {"if-none-match": rec.etag})]
