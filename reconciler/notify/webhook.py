"""A signed webhook on every ReadyForApplication transition, delivered off the reconcile path.

Each transition becomes one POST of a JSON body to the configured URL:

    {"deliveryId": "<uuid4>", "cluster": "east", "namespace": "app", "name": "app",
     "readyForApplication": true, "generation": 2, "currentPrimary": "east",
     "observedAt": "2025-01-01T12:00:00.000Z"}

with the headers `Content-Type: application/json`, `X-Ramen-Delivery: <deliveryId>` and,
when a key is configured, `X-Ramen-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`.

Receivers should
- verify the signature over the raw body bytes before parsing them (`verify_signature`);
- deduplicate on `deliveryId`: a delivery is retried with the same id and body, so the
  receiver may see it more than once (at-least-once delivery);
- treat the message as a hint and order by `generation`, not by arrival: deliveries are sent
  in order from one thread, but a dropped or failed one is never re-sent, and an operator
  restart may report a transition again under a new id;
- answer 2xx quickly. 5xx, 429, timeouts and connection errors are retried with exponential
  backoff and jitter (honouring a `Retry-After` of seconds); any other status is final.

`notify()` never blocks: it signs the body and appends it to a bounded queue that one
background thread drains. When the queue is full the oldest delivery is dropped (and
counted), because a receiver that is that far behind is better served by the newest news.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import http.client
import json
import logging
import random
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import __version__
from reconciler.notify.signing import SIGNATURE_HEADER, sign, verify_signature

log = logging.getLogger(__name__)

__all__ = ["DELIVERY_HEADER", "SIGNATURE_HEADER", "WebhookNotifier", "WebhookStats", "sign", "verify_signature"]

DELIVERY_HEADER = "X-Ramen-Delivery"
# Remembered last-reported states; bounded so deleted DRControls cannot grow it forever.
_MAX_REMEMBERED = 10_000


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _redacted(url: str) -> str:
    """Scheme and host only: credentials, query and path (Slack-style webhooks keep their secret in
    the path) must not reach the log."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, "/..." if parts.path not in ("", "/") else "", "", ""))


@dataclass(frozen=True)
class WebhookStats:
    delivered: int
    failed: int
    dropped: int
    queued: int


@dataclass(frozen=True)
class _Delivery:
    id: str
    body: bytes
    key: str  # namespace/name, for logs


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a hop: following one would re-send (or drop) a signed POST elsewhere."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        return None


class WebhookNotifier:
    """POSTs signed ReadyForApplication transitions to `url` from one background thread.

    Use `notify` as the DRControl controller's `on_ready_change`; call `start()` once and
    `stop()` at shutdown. Counters: `delivered` (a 2xx came back), `failed` (a final non-2xx,
    or attempts exhausted), `dropped` (pushed out of a full queue, or abandoned by `stop`).
    """

    def __init__(self, url: str, hmac_key: bytes | None, cluster: str, *, timeout: float = 5.0,
                 max_attempts: int = 6, backoff_base: float = 1.0, backoff_cap: float = 60.0,
                 queue_size: int = 1000, now: Callable[[], str] = _utc_now,
                 rng: random.Random | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook URL must be http(s)")
        if hmac_key is not None and not hmac_key:
            raise ValueError("webhook HMAC key is empty")
        if max_attempts < 1 or queue_size < 1:
            raise ValueError("max_attempts and queue_size must be at least 1")
        self.url, self.cluster = url, cluster
        self._key = hmac_key
        self.timeout, self.max_attempts = timeout, max_attempts
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.queue_size = queue_size
        self._now = now
        self._rng = rng or random.Random()
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._queue: collections.deque[_Delivery] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[tuple[str, str, str], bool] = {}
        self._delivered = self._failed = self._dropped = 0

    # -- counters ------------------------------------------------------------------------
    @property
    def delivered(self) -> int:
        return self.stats().delivered

    @property
    def failed(self) -> int:
        return self.stats().failed

    @property
    def dropped(self) -> int:
        return self.stats().dropped

    def stats(self) -> WebhookStats:
        with self._cond:
            return WebhookStats(self._delivered, self._failed, self._dropped, len(self._queue))

    # -- the caller's side -----------------------------------------------------------------
    def notify(self, drcontrol: Mapping[str, Any], ready: bool) -> None:
        """Queue one delivery for this transition; returns at once and never raises."""
        try:
            delivery = self._delivery(drcontrol, bool(ready))
        except Exception:  # a notification must never fail a reconcile
            log.exception("webhook: could not build a delivery")
            return
        if delivery is None:
            return
        with self._cond:
            if self._closing:
                self._dropped += 1
                return
            if len(self._queue) >= self.queue_size:
                old = self._queue.popleft()
                self._dropped += 1
                log.warning("webhook: queue full, dropped delivery %s", old.id, extra={"key": old.key})
            self._queue.append(delivery)
            self._cond.notify()

    def _delivery(self, drcontrol: Mapping[str, Any], ready: bool) -> _Delivery | None:
        meta = drcontrol.get("metadata") or {}
        status = drcontrol.get("status") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        # The controller reports a transition by comparing with its cache, which can lag its own
        # status write; the same transition may then be reported twice. Only a change is news.
        ident = (str(meta.get("uid") or ""), ns, name)
        with self._cond:
            if self._last.get(ident) == ready:
                return None
            self._last.pop(ident, None)
            self._last[ident] = ready
            while len(self._last) > _MAX_REMEMBERED:
                del self._last[next(iter(self._last))]
        did = str(uuid.uuid4())
        payload = {
            "deliveryId": did,
            "cluster": self.cluster,
            "namespace": ns,
            "name": name,
            "readyForApplication": ready,
            "generation": status.get("generation"),
            "currentPrimary": status.get("currentPrimary"),
            "observedAt": self._now(),
        }
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return _Delivery(did, body, f"{ns}/{name}")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()
        log.info("webhook: delivering to %s (signed: %s)", _redacted(self.url), self._key is not None)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop accepting; deliver what is queued for up to `timeout` seconds, then abandon the rest.

        Returns whether the delivery thread finished. An attempt in flight is not interrupted
        (it ends within the request timeout); the thread is a daemon, so it never holds up exit.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._abort.set()
        if thread is not None:
            thread.join(0.1)  # a thread waiting out a backoff ends at once; one mid-request does not
        with self._cond:
            self._dropped += len(self._queue)
            self._queue.clear()
        return thread is None or not thread.is_alive()

    # -- the delivery thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._abort.is_set():
                    return
                d = self._queue.popleft()
            outcome = self._deliver(d)
            with self._cond:
                if outcome == "delivered":
                    self._delivered += 1
                elif outcome == "failed":
                    self._failed += 1
                else:
                    self._dropped += 1

    def _deliver(self, d: _Delivery) -> str:
        """Attempts until a final answer: 'delivered', 'failed' or 'abandoned' (on stop)."""
        for attempt in range(1, self.max_attempts + 1):
            code, retry_after, reason = self._post(d)
            if code is not None and 200 <= code < 300:
                log.info("webhook: delivered %s (attempt %d)", d.id, attempt, extra={"key": d.key})
                return "delivered"
            retryable = code is None or code == 429 or code >= 500
            if not retryable or attempt == self.max_attempts:
                log.warning("webhook: delivery %s to %s failed after %d attempt(s): %s", d.id,
                            _redacted(self.url), attempt, reason, extra={"key": d.key})
                return "failed"
            delay = self.backoff(attempt, retry_after)
            log.info("webhook: delivery %s attempt %d: %s; retrying in %.1fs", d.id, attempt, reason, delay,
                     extra={"key": d.key})
            if self._abort.wait(delay):
                return "abandoned"
        return "failed"  # pragma: no cover - the loop always returns

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before attempt `attempt + 1`: exponential, capped, with half of it jittered.

        Half fixed keeps retries spaced out; half random keeps many operators that lost the
        same receiver from retrying in lock-step. A server's Retry-After is a lower bound.
        """
        full = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
        delay = full / 2 + self._rng.uniform(0, full / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_cap))
        return delay

    def _post(self, d: _Delivery) -> tuple[int | None, float | None, str]:
        """One attempt: (HTTP status or None for no answer, Retry-After seconds, a reason for the log)."""
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: d.id,
                   "User-Agent": f"ramen-p2p/{__version__}"}
        if self._key is not None:
            headers[SIGNATURE_HEADER] = sign(d.body, self._key)
        req = urllib.request.Request(self.url, data=d.body, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                resp.read(4096)
                return int(resp.status), None, f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            with contextlib.suppress(Exception):  # an error without a body has nothing to close
                e.close()
            return e.code, _retry_after(e.headers), f"HTTP {e.code}"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            return None, None, f"{type(e).__name__}: {reason}"
        except ValueError as e:  # a URL urllib cannot use: retrying will not help
            return 0, None, f"bad URL: {e}"


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare for webhooks; the computed backoff applies
