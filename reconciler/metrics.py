"""Prometheus metrics of the operator, on a registry of its own (so tests can run several)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from reconciler.kube import Result


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter("ramen_p2p_reconcile_total", "Reconciles by controller and result",
                                  ["controller", "result"], registry=r)
        self.reconcile_seconds = Histogram("ramen_p2p_reconcile_duration_seconds", "Reconcile duration",
                                           ["controller"], registry=r)
        self.s3_requests = Counter("ramen_p2p_s3_requests_total", "S3 requests by operation and result",
                                   ["operation", "result"], registry=r)
        self.s3_seconds = Histogram("ramen_p2p_s3_request_duration_seconds", "S3 request latency",
                                    ["operation"], registry=r)
        self.heartbeat_age = Gauge("ramen_p2p_peer_heartbeat_age_seconds",
                                   "Seconds since the peer's heartbeat last changed (local monotonic clock)",
                                   ["peer"], registry=r)
        self.generation = Gauge("ramen_p2p_drstate_generation", "dr-state generation seen per DRControl",
                                ["namespace", "name"], registry=r)
        self.primary = Gauge("ramen_p2p_is_primary", "1 when this cluster is the Primary of the DRControl",
                             ["namespace", "name"], registry=r)
        self.ready = Gauge("ramen_p2p_ready_for_application", "1 when ReadyForApplication is True here",
                           ["namespace", "name"], registry=r)
        self.last_action_seconds = Gauge("ramen_p2p_last_action_duration_seconds",
                                         "Duration of the last completed action per DRControl",
                                         ["namespace", "name", "action"], registry=r)

    def timed(self, controller: str, fn: Callable[[str], Result | None]) -> Callable[[str], Result | None]:
        """Wrap a reconcile function to count and time it."""

        def wrapped(key: str) -> Result | None:
            t0 = time.monotonic()
            try:
                out = fn(key)
            except Exception:
                self.reconciles.labels(controller, "error").inc()
                raise
            finally:
                self.reconcile_seconds.labels(controller).observe(time.monotonic() - t0)
            self.reconciles.labels(controller, "success").inc()
            return out

        return wrapped

    def instrument_s3(self, client: Any) -> None:
        """Count and time every request of a boto3 client through its event hooks."""
        # A boto3 client sends one request at a time per thread: a thread-local start time suffices.
        local = threading.local()

        def before(**_: Any) -> None:
            local.t0 = time.monotonic()

        def after(http_response: Any, model: Any = None, **_: Any) -> None:
            op = getattr(model, "name", "unknown")
            t0 = getattr(local, "t0", None)
            if t0 is not None:
                self.s3_seconds.labels(op).observe(time.monotonic() - t0)
                local.t0 = None
            status = getattr(http_response, "status_code", 0) if http_response is not None else 0
            self.s3_requests.labels(op, "ok" if 200 <= status < 400 else f"http_{status or 'error'}").inc()

        events = client.meta.events
        events.register("before-send.s3", before)
        events.register("after-call.s3", after)
        events.register("after-call-error.s3", lambda **kw: after(None))

    def observe_drcontrol(self, namespace: str, name: str, cluster: str, status: dict[str, Any]) -> None:
        gen = status.get("generation")
        if isinstance(gen, int):
            self.generation.labels(namespace, name).set(gen)
        self.primary.labels(namespace, name).set(1 if status.get("currentPrimary") == cluster else 0)
        rfa = any(c.get("type") == "ReadyForApplication" and c.get("status") == "True"
                  for c in status.get("conditions") or [])
        self.ready.labels(namespace, name).set(1 if rfa else 0)
        la = status.get("lastAction") or {}
        if la.get("durationSeconds") is not None:
            self.last_action_seconds.labels(namespace, name, la.get("action", "")).set(la["durationSeconds"])
