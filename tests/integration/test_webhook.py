"""The webhook end to end: key from a real Secret, payload from a real DRControl, a receiver that verifies.

The receiver does what the README asks of one: it checks `X-Ramen-Signature` over the raw
body with `verify_signature` and the key from the same Secret before trusting anything,
answers 401 to a bad signature, and deduplicates on `X-Ramen-Delivery`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from e2e import harness
from e2e.crdinstall import OUR_CRDS, install_crds
from e2e.localenv.clients import Cluster
from reconciler.notify import WebhookNotifier, verify_signature

pytestmark = pytest.mark.realenv


@dataclass
class VerifyingReceiver:
    key: bytes
    fail_first: int = 0
    url: str = ""
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # deliveryId -> payload
    attempts: list[str] = field(default_factory=list)
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, body: bytes) -> int:
        if not verify_signature(body, headers.get("X-Ramen-Signature"), self.key):
            with self.lock:
                self.rejected += 1
            return 401
        payload = json.loads(body)
        with self.lock:
            self.attempts.append(headers["X-Ramen-Delivery"])
            if len(self.attempts) <= self.fail_first:
                return 503
            self.accepted.setdefault(payload["deliveryId"], payload)
        return 204


@pytest.fixture
def serve() -> Iterator[Callable[[VerifyingReceiver], VerifyingReceiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(rec: VerifyingReceiver) -> VerifyingReceiver:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(rec.handle(self.headers, body))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        rec.url = f"http://127.0.0.1:{server.server_address[1]}/dr"
        return rec

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _secret_key(c: Cluster, namespace: str) -> bytes:
    """Create the webhook Secret and read the key back the way the operator does (base64 of `hmacKey`)."""
    c.core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="dr-webhook"),
        data={"hmacKey": base64.b64encode(secrets.token_bytes(32)).decode()}))
    data = c.core.read_namespaced_secret("dr-webhook", namespace).data
    return base64.b64decode(data["hmacKey"])


def _drcontrol_with_status(c: Cluster, namespace: str) -> dict[str, Any]:
    install_crds(c.api, OUR_CRDS)
    c.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, namespace, "drcontrols",
                                             harness.drcontrol(namespace))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"generation": 3, "currentPrimary": "east", "phase": "Idle", "conditions": [
        {"type": "ReadyForApplication", "status": "True", "reason": "PrimaryReady", "message": "ready",
         "lastTransitionTime": now}]}
    obj: dict[str, Any] = c.custom.patch_namespaced_custom_object_status(
        harness.GROUP, harness.VERSION, namespace, "drcontrols", "app", {"status": status})
    return obj


def _wait(pred: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_receiver_verifies_a_signed_transition_of_a_real_drcontrol(
        east: Cluster, namespace: str, serve: Callable[[VerifyingReceiver], VerifyingReceiver]) -> None:
    key = _secret_key(east, namespace)
    drc = _drcontrol_with_status(east, namespace)
    rec = serve(VerifyingReceiver(key, fail_first=2))
    n = WebhookNotifier(rec.url, key, "east", backoff_base=0.05, backoff_cap=0.2)
    n.start()
    try:
        n.notify(drc, True)
        _wait(lambda: n.delivered == 1)
    finally:
        n.stop(2.0)
    assert rec.rejected == 0
    assert len(rec.attempts) == 3 and len(set(rec.attempts)) == 1  # retried under one delivery id
    (payload,) = rec.accepted.values()
    assert payload["deliveryId"] == rec.attempts[0]
    assert payload["cluster"] == "east"
    assert (payload["namespace"], payload["name"]) == (namespace, "app")
    assert payload["readyForApplication"] is True
    assert (payload["generation"], payload["currentPrimary"]) == (3, "east")


def test_receiver_rejects_a_delivery_signed_with_another_key(
        east: Cluster, namespace: str, serve: Callable[[VerifyingReceiver], VerifyingReceiver]) -> None:
    key = _secret_key(east, namespace)
    drc = _drcontrol_with_status(east, namespace)
    rec = serve(VerifyingReceiver(key))
    forged = WebhookNotifier(rec.url, b"not-the-secret", "east", backoff_base=0.05)
    unsigned = WebhookNotifier(rec.url, None, "east", backoff_base=0.05)
    for n in (forged, unsigned):
        n.start()
        n.notify(drc, False)
    try:
        _wait(lambda: forged.failed == 1 and unsigned.failed == 1)
    finally:
        for n in (forged, unsigned):
            n.stop(2.0)
    assert rec.rejected == 2  # 401 is final: neither was retried
    assert not rec.accepted
