"""Prometheus metrics of the operator, on a registry of its own (so tests can run several)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from reconciler.kube import Result
from reconciler.kube.client import RequestStats

# The last segment(s) of each coordination key (reconciler/s3peer/keys.py), in the order to test them.
_OBJECT_KINDS = (("dr-state-acceptor", "dr-state-acceptor"), ("/dr-state", "dr-state"), ("/dr-intent/", "dr-intent"),
                 ("/cluster-status/", "cluster-status"), ("/digest", "digest"), ("/health", "health"),
                 ("/storage-classes", "storage-classes"))


def object_kind(key: str) -> str:
    """Which kind of coordination object an S3 key names (a small, fixed set of label values)."""
    for marker, kind in _OBJECT_KINDS:
        if marker in key:
            return kind
    return "other"


class _CountsBy(Collector):
    """A counter family read from counts kept elsewhere (one label), at every scrape."""

    def __init__(self, name: str, documentation: str, label: str, counts: Callable[[], Mapping[str, int]]) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.counts = counts

    def collect(self) -> Any:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, n in sorted(self.counts().items()):
            family.add_metric([value], n)
        yield family


def _by_verb(stats: RequestStats) -> Callable[[], Mapping[str, int]]:
    def counts() -> Mapping[str, int]:
        by_verb: dict[str, int] = {}
        for (_origin, verb), n in stats.snapshot().items():
            by_verb[verb] = by_verb.get(verb, 0) + n
        return by_verb
    return counts


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
        self.s3_object_requests = Counter("ramen_p2p_s3_object_requests_total",
                                          "S3 requests by operation and kind of coordination object",
                                          ["operation", "object"], registry=r)
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
        self.phase = Gauge("ramen_p2p_drcontrol_phase", "1 for the phase the DRControl is in",
                           ["namespace", "name", "phase"], registry=r)
        self.condition = Gauge("ramen_p2p_drcontrol_condition",
                               "A DRControl condition: 1 True, 0 False, -1 Unknown; its reason as a label",
                               ["namespace", "name", "type", "reason"], registry=r)
        self.action_started = Gauge("ramen_p2p_action_started_timestamp_seconds",
                                    "When the action in progress started (Unix seconds); absent when none runs",
                                    ["namespace", "name", "action", "target"], registry=r)
        self.peer_stale = Gauge("ramen_p2p_peer_stale",
                                "1 when the peer's heartbeat has not changed for longer than --peer-stale-after",
                                ["peer"], registry=r)
        self.store_reachable = Gauge("ramen_p2p_s3_store_reachable",
                                     "1 when this cluster's last heartbeat to the coordination store succeeded",
                                     ["profile"], registry=r)
        # The label values exported per DRControl, so a change (or a deletion) removes the old series.
        self._series: dict[tuple[str, str], dict[Gauge, set[tuple[str, ...]]]] = {}
        self._series_lock = threading.Lock()
        self._kube_requests: _CountsBy | None = None
        self._nudges: _CountsBy | None = None

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

        def params(params: Any = None, **_: Any) -> None:
            key = params.get("Key") or params.get("Prefix") if isinstance(params, dict) else None
            local.object = object_kind(key if isinstance(key, str) else "")

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
            self.s3_object_requests.labels(op, getattr(local, "object", "other")).inc()

        events = client.meta.events
        events.register("before-parameter-build.s3", params)
        events.register("before-send.s3", before)
        events.register("after-call.s3", after)
        events.register("after-call-error.s3", lambda **kw: after(None))

    def count_kube_requests(self, stats: RequestStats) -> None:
        """Export the API client's request counts (ramen_p2p_kube_requests_total by verb)."""
        if self._kube_requests is None:
            self._kube_requests = _CountsBy("ramen_p2p_kube_requests", "API server requests by verb", "verb",
                                            _by_verb(stats))
            self.registry.register(self._kube_requests)
        self._kube_requests.counts = _by_verb(stats)  # a later Manager on the same metrics counts its own client

    def count_nudges(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Export the nudger's counts (ramen_p2p_peer_nudges_total by outcome)."""
        if self._nudges is None:
            self._nudges = _CountsBy("ramen_p2p_peer_nudges", "Nudges to the peer's operator by outcome "
                                     "(coalesced: a write told by a nudge sent for a later one)", "outcome", counts)
            self.registry.register(self._nudges)
        self._nudges.counts = counts

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
        now: dict[Gauge, dict[tuple[str, ...], float]] = {self.phase: {}, self.condition: {}, self.action_started: {}}
        if status.get("phase"):
            now[self.phase][(namespace, name, str(status["phase"]))] = 1
        for c in status.get("conditions") or []:
            value = {"True": 1.0, "False": 0.0}.get(str(c.get("status")), -1.0)
            now[self.condition][(namespace, name, str(c.get("type", "")), str(c.get("reason", "")))] = value
        started = _unix(la.get("startedAt")) if la.get("result") == "InProgress" else None
        if started is not None:
            now[self.action_started][(namespace, name, str(la.get("action", "")), str(la.get("targetCluster", "")))] \
                = started
        with self._series_lock:
            had = self._series.setdefault((namespace, name), {})
            for gauge, values in now.items():
                for labels in had.get(gauge, set()) - values.keys():
                    gauge.remove(*labels)
                for labels, v in values.items():
                    gauge.labels(*labels).set(v)
                had[gauge] = set(values)

    def forget_drcontrol(self, namespace: str, name: str) -> None:
        """The DRControl is gone: drop every series it had."""
        with self._series_lock:
            had = self._series.pop((namespace, name), {})
            for gauge, labels_set in had.items():
                for labels in labels_set:
                    gauge.remove(*labels)
        for gauge in (self.generation, self.primary, self.ready):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        for metric in self.last_action_seconds.collect():
            for sample in metric.samples:
                if sample.labels.get("namespace") == namespace and sample.labels.get("name") == name:
                    self.last_action_seconds.remove(namespace, name, sample.labels.get("action", ""))


def _unix(stamp: Any) -> float | None:
    """An RFC 3339 timestamp as Unix seconds; None when absent or unreadable."""
    if not isinstance(stamp, str):
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
