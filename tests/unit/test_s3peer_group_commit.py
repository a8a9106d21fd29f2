"""The digest's group commit: a report whose change a digest PUT carried does not wait for another."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler.s3peer import AppKey, ClusterStatus, Coordinator, ObjectStore, Role


class GatedStore(ObjectStore):
    """The real store client (on moto), with each digest PUT held until the test opens its gate."""

    def __init__(self, client: Any, bucket: str) -> None:
        super().__init__(client, bucket)
        self.digest_puts: list[threading.Event] = []  # one gate per digest PUT, in order
        self.entered = threading.Semaphore(0)

    def put(self, key: str, data: bytes, **kw: Any) -> str:
        if key.endswith("/digest"):
            gate = threading.Event()
            self.digest_puts.append(gate)
            self.entered.release()
            assert gate.wait(10), "gate never opened"
        return super().put(key, data, **kw)


@pytest.fixture
def gated() -> Iterator[tuple[Coordinator, GatedStore]]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="ramen-unit")
        store = GatedStore(client, "ramen-unit")
        yield Coordinator(store, "east"), store


def _report(me: Coordinator, n: int) -> threading.Thread:
    status = ClusterStatus(Role.PRIMARY, 1)
    t = threading.Thread(target=me.write_cluster_status, args=(AppKey("ns", f"app-{n}"), status), daemon=True)
    t.start()
    return t


def test_a_report_carried_by_a_digest_put_returns_while_later_reports_are_still_written(
        gated: tuple[Coordinator, GatedStore]) -> None:
    me, store = gated
    me.digest_entries()  # load the (empty) digest first, so every thread below only reports
    a = _report(me, 1)
    assert store.entered.acquire(timeout=10)  # PUT 1 in flight, carrying app-1
    b, c = _report(me, 2), _report(me, 3)
    while me.digest_entries().keys() != {AppKey("ns", f"app-{i}") for i in (1, 2, 3)}:
        time.sleep(0.01)
    time.sleep(0.2)  # b and c now wait for the flush in flight
    store.digest_puts[0].set()
    assert store.entered.acquire(timeout=10)  # PUT 2, carrying app-2 and app-3
    d = _report(me, 4)
    while AppKey("ns", "app-4") not in me.digest_entries():
        time.sleep(0.01)
    store.digest_puts[1].set()
    assert store.entered.acquire(timeout=10)  # PUT 3, carrying app-4
    for t in (a, b, c):
        t.join(5)
        assert not t.is_alive(), "a report already written waits behind a later report's digest PUT"
    assert d.is_alive()  # its own change is not written yet
    store.digest_puts[2].set()
    d.join(5)
    assert not d.is_alive()
    assert len(store.digest_puts) == 3
    assert set(me.digest_entries()) == {AppKey("ns", f"app-{i}") for i in (1, 2, 3, 4)}


def test_reports_made_while_the_first_lingers_share_its_digest_write() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="ramen-unit")
        store = GatedStore(client, "ramen-unit")
        me = Coordinator(store, "east", digest_linger=0.5)
        me.digest_entries()
        first = _report(me, 1)
        time.sleep(0.1)  # app-1 lingers; these arrive before its flush starts
        rest = [_report(me, n) for n in range(2, 6)]
        assert store.entered.acquire(timeout=10)
        store.digest_puts[0].set()
        for t in (first, *rest):
            t.join(5)
            assert not t.is_alive()
        assert len(store.digest_puts) == 1  # five reports, one index write (and one page)
        assert set(me.digest_entries()) == {AppKey("ns", f"app-{i}") for i in range(1, 6)}
