"""The ReadyForApplication webhook: signatures, payload, retry policy, queueing, never blocking the caller."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.notify import WebhookNotifier, sign, verify_signature

KEY = b"s3cr3t-webhook-key"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP receiver answering from a script of status codes (the last one repeats)."""

    script: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.received.append(Received(headers, body))
            n = len(self.received)
        return self.script[min(n, len(self.script)) - 1]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.received]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours proxy variables; the receiver is on loopback.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code = rec.answer(dict(self.headers.items()), body)
            if rec.delay:
                time.sleep(rec.delay)
            self.send_response(code)
            if code in (301, 302):
                self.send_header("Location", rec.url + "/elsewhere")
            for k, v in rec.extra_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    t = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield rec
    server.shutdown()
    server.server_close()


def drc(name: str = "app", ready: bool = True, generation: int = 2, primary: str = "west",
        uid: str = "uid-1") -> dict[str, Any]:
    return {"apiVersion": "ramendr.openshift.io/v1alpha1", "kind": "DRControl",
            "metadata": {"name": name, "namespace": "shop", "uid": uid},
            "status": {"generation": generation, "currentPrimary": primary,
                       "conditions": [{"type": "ReadyForApplication", "status": str(ready)}]}}


def notifier(url: str, key: bytes | None = KEY, **kw: Any) -> WebhookNotifier:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_cap", 0.05)
    kw.setdefault("timeout", 2.0)
    return WebhookNotifier(url, key, "west", rng=random.Random(7), **kw)


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture
def started() -> Iterator[list[WebhookNotifier]]:
    made: list[WebhookNotifier] = []
    yield made
    for n in made:
        n.stop(0.2)


def run(n: WebhookNotifier, made: list[WebhookNotifier]) -> WebhookNotifier:
    made.append(n)
    n.start()
    return n


# -- signatures ---------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_the_exact_bytes() -> None:
    body = b'{"a":1}'
    assert sign(body, KEY) == "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
    assert verify_signature(body, sign(body, KEY), KEY)


@pytest.mark.parametrize("header", [
    None, "", "sha256=", "deadbeef", sign(b'{"a":1}', KEY).upper(), sign(b'{"a": 1}', KEY),
    sign(b'{"a":1}', b"other"), "sha1=" + sign(b'{"a":1}', KEY)[7:], "sha256=é",
])
def test_verify_rejects_anything_but_the_signature(header: str | None) -> None:
    assert not verify_signature(b'{"a":1}', header, KEY)


def test_verify_rejects_an_empty_key() -> None:
    assert not verify_signature(b"x", sign(b"x", b"k"), b"")


def test_verify_tolerates_surrounding_whitespace() -> None:
    assert verify_signature(b"x", f"  {sign(b'x', KEY)} ", KEY)


# -- payload and headers -----------------------------------------------------------


def test_payload_headers_and_signature(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    n = run(notifier(receiver.url, now=lambda: "2025-01-02T03:04:05.678Z"), started)
    n.notify(drc(), True)
    wait_until(lambda: n.delivered == 1)
    (r,) = receiver.received
    payload = json.loads(r.body)
    assert payload == {"deliveryId": payload["deliveryId"], "cluster": "west", "namespace": "shop", "name": "app",
                       "readyForApplication": True, "generation": 2, "currentPrimary": "west",
                       "observedAt": "2025-01-02T03:04:05.678Z"}
    assert uuid.UUID(payload["deliveryId"]).version == 4
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Ramen-Delivery"] == payload["deliveryId"]
    assert verify_signature(r.body, r.headers["X-Ramen-Signature"], KEY)


def test_no_signature_header_without_a_key(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    n = run(notifier(receiver.url, key=None), started)
    n.notify(drc(), False)
    wait_until(lambda: n.delivered == 1)
    assert "X-Ramen-Signature" not in receiver.received[0].headers
    assert receiver.bodies()[0]["readyForApplication"] is False


def test_observed_at_defaults_to_utc_now(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    n = run(notifier(receiver.url), started)
    n.notify(drc(), True)
    wait_until(lambda: n.delivered == 1)
    assert receiver.bodies()[0]["observedAt"].endswith("Z")


def test_deliveries_keep_their_order(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    n = run(notifier(receiver.url), started)
    for i in range(5):
        n.notify(drc(name=f"app-{i}"), True)
    wait_until(lambda: n.delivered == 5)
    assert [b["name"] for b in receiver.bodies()] == [f"app-{i}" for i in range(5)]


def test_a_repeated_report_of_the_same_state_is_not_a_transition(receiver: Receiver,
                                                                  started: list[WebhookNotifier]) -> None:
    n = run(notifier(receiver.url), started)
    n.notify(drc(), True)
    n.notify(drc(), True)  # the controller's cache lagged its own status write
    n.notify(drc(), False)
    n.notify(drc(uid="uid-2"), False)  # deleted and re-created: a different object
    wait_until(lambda: n.delivered == 3)
    time.sleep(0.1)
    assert [(b["readyForApplication"]) for b in receiver.bodies()] == [True, False, False]


# -- retry policy ------------------------------------------------------------------------


def test_5xx_is_retried_with_the_same_delivery_id(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    receiver.script = [500, 500, 200]
    n = run(notifier(receiver.url), started)
    n.notify(drc(), True)
    wait_until(lambda: n.delivered == 1)
    time.sleep(0.1)
    assert len(receiver.received) == 3
    assert len({r.headers["X-Ramen-Delivery"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    assert all(verify_signature(r.body, r.headers["X-Ramen-Signature"], KEY) for r in receiver.received)
    assert (n.delivered, n.failed, n.dropped) == (1, 0, 0)


def test_429_is_retried(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    receiver.script = [429, 200]
    n = run(notifier(receiver.url), started)
    n.notify(drc(), True)
    wait_until(lambda: n.delivered == 1)
    assert len(receiver.received) == 2


@pytest.mark.parametrize("code", [400, 401, 404, 410, 302])
def test_other_4xx_and_redirects_are_final(receiver: Receiver, started: list[WebhookNotifier], code: int) -> None:
    receiver.script = [code, 200]
    n = run(notifier(receiver.url), started)
    n.notify(drc(), True)
    wait_until(lambda: n.failed == 1)
    time.sleep(0.2)
    assert len(receiver.received) == 1
    assert (n.delivered, n.failed) == (0, 1)


def test_attempts_are_bounded(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    receiver.script = [503]
    n = run(notifier(receiver.url, max_attempts=4), started)
    n.notify(drc(), True)
    wait_until(lambda: n.failed == 1)
    assert len(receiver.received) == 4


def test_connection_errors_are_retried(started: list[WebhookNotifier]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    n = run(notifier(f"http://127.0.0.1:{port}/hook", max_attempts=3), started)
    calls: list[int] = []
    original = n._post

    def counting(d: Any) -> tuple[int | None, float | None, str]:
        out = original(d)
        calls.append(1)
        return out

    n._post = counting  # type: ignore[method-assign]
    n.notify(drc(), True)
    wait_until(lambda: n.failed == 1)
    assert len(calls) == 3


def test_a_receiver_timeout_is_retried(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    receiver.delay = 0.5
    n = run(notifier(receiver.url, timeout=0.1, max_attempts=2), started)
    n.notify(drc(), True)
    wait_until(lambda: n.failed == 1)
    assert len(receiver.received) == 2


def test_backoff_grows_is_capped_and_jittered() -> None:
    n = WebhookNotifier("http://127.0.0.1:1/", None, "east", backoff_base=1.0, backoff_cap=10.0,
                        rng=random.Random(1))
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        delays = {n.backoff(attempt) for _ in range(20)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1
    assert n.backoff(1, retry_after=7.0) == 7.0  # the server's Retry-After is a lower bound...
    assert n.backoff(1, retry_after=100.0) == 10.0  # ...within the cap


def test_retry_after_is_honoured(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    receiver.script = [503, 200]
    receiver.extra_headers = {"Retry-After": "0.3"}
    n = run(notifier(receiver.url, backoff_cap=5.0), started)
    t0 = time.monotonic()
    n.notify(drc(), True)
    wait_until(lambda: n.delivered == 1)
    assert time.monotonic() - t0 >= 0.3


# -- never blocking the caller -------------------------------------------------------------


def test_a_slow_receiver_never_blocks_notify(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    receiver.delay = 1.5
    n = run(notifier(receiver.url, timeout=5.0), started)
    n.notify(drc(name="first"), True)
    wait_until(lambda: len(receiver.received) == 1)  # the delivery thread is now stuck in the receiver
    t0 = time.monotonic()
    for i in range(50):
        n.notify(drc(name=f"app-{i}"), True)
    elapsed = time.monotonic() - t0
    # A behaviour check, not a benchmark: far below the receiver's delay, whatever the machine.
    assert elapsed < 0.5, elapsed


def test_a_failing_receiver_never_blocks_notify(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    receiver.script = [500]
    n = run(notifier(receiver.url, backoff_base=1.0, backoff_cap=1.0), started)
    t0 = time.monotonic()
    for i in range(20):
        n.notify(drc(name=f"app-{i}"), True)
    assert time.monotonic() - t0 < 0.5


def test_full_queue_drops_the_oldest_and_counts_it(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    n = notifier(receiver.url, queue_size=3)  # not started yet: everything stays queued
    for i in range(5):
        n.notify(drc(name=f"app-{i}"), True)
    assert n.dropped == 2
    assert n.stats().queued == 3
    run(n, started)
    wait_until(lambda: n.delivered == 3)
    assert [b["name"] for b in receiver.bodies()] == ["app-2", "app-3", "app-4"]


def test_notify_never_raises_on_a_malformed_object(receiver: Receiver, started: list[WebhookNotifier]) -> None:
    n = run(notifier(receiver.url), started)
    n.notify({"metadata": "not a mapping"}, True)
    assert n.stats().queued == 0


# -- lifecycle ---------------------------------------------------------------------------


def test_stop_delivers_what_is_queued(receiver: Receiver) -> None:
    n = notifier(receiver.url)
    n.start()
    for i in range(3):
        n.notify(drc(name=f"app-{i}"), True)
    assert n.stop(5.0)
    assert n.delivered == 3


def test_stop_abandons_retries_after_its_timeout(receiver: Receiver) -> None:
    receiver.script = [500]
    n = notifier(receiver.url, backoff_base=30.0, backoff_cap=30.0)
    n.start()
    n.notify(drc(name="a"), True)
    n.notify(drc(name="b"), True)
    wait_until(lambda: len(receiver.received) == 1)
    t0 = time.monotonic()
    assert n.stop(0.3)
    assert time.monotonic() - t0 < 3.0
    assert (n.delivered, n.failed, n.dropped) == (0, 0, 2)
    n.notify(drc(name="c"), True)  # after stop: counted, not queued
    assert n.dropped == 3


def test_constructor_rejects_unusable_settings() -> None:
    with pytest.raises(ValueError):
        WebhookNotifier("ftp://x", None, "east")
    with pytest.raises(ValueError):
        WebhookNotifier("http://x", b"", "east")
    with pytest.raises(ValueError):
        WebhookNotifier("http://x", None, "east", queue_size=0)


def test_secrets_never_reach_the_log(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.script = [500, 400]
    n = notifier(receiver.url + "?token=tok3n")
    caplog.set_level(logging.DEBUG, logger="reconciler.notify")
    n.start()
    n.notify(drc(), True)
    wait_until(lambda: n.failed == 1)
    n.stop(1.0)
    text = caplog.text
    assert "failed" in text
    for secret in (KEY.decode(), "tok3n", sign(receiver.received[0].body, KEY)):
        assert secret not in text
