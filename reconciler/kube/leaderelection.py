"""Lease-based leader election (coordination.k8s.io/v1), after client-go's leaderelection.

A candidate takes the Lease when it is free or when its holder has not
renewed it for `lease_duration` seconds, measured on the candidate's own
monotonic clock from when it last saw the record change (so clock skew
between nodes does not matter). Every write is a compare-and-swap on the
Lease's resourceVersion, so two candidates can never both win one round.

The leader renews every `retry_period`. If it cannot renew for
`renew_deadline` (< `lease_duration`) it stops leading *before* anyone else
may take over, which is what keeps two replicas from acting at once. On a
clean shutdown it releases the Lease so a successor need not wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.kube.client import KubeClient, request_origin
from reconciler.kube.errors import ApiError
from reconciler.kube.resources import LEASES, Obj

log = logging.getLogger(__name__)


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")


class LeaderElector:
    """Campaigns for a Lease; runs `on_started_leading(stop)` in a thread while it holds it.

    `stop` is set when leadership ends (lost or released); `on_stopped_leading`
    is called after that. A process that loses leadership should normally exit.
    """

    def __init__(
        self,
        client: KubeClient,
        config: LeaseConfig,
        on_started_leading: Callable[[threading.Event], None],
        on_stopped_leading: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._clock = clock
        self._shutdown = threading.Event()
        self._leading = threading.Event()
        self._observed: Obj | None = None
        self._observed_key: tuple[str | None, str | None] | None = None  # (holder, renewTime)
        self._observed_at = 0.0
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def start(self) -> None:
        """Campaign in a background thread."""
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop campaigning; a leader stops its work and releases the Lease."""
        self._shutdown.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Campaign until shutdown; returns after leadership is lost or released."""
        with request_origin("leaderelection"):
            if not self._acquire():
                return
            work_stop = threading.Event()
            worker = threading.Thread(target=self.on_started_leading, args=(work_stop,), name="leader", daemon=True)
            worker.start()
            try:
                self._renew_loop()
            finally:
                self._leading.clear()
                work_stop.set()
                released = self._shutdown.is_set() and self._release()
                log.info("stopped leading (%s)", "released" if released else "lost",
                         extra={"lease": self._lease_key, "identity": self.config.identity})
                if self.on_stopped_leading:
                    self.on_stopped_leading()

    # -- rounds ------------------------------------------------------------
    @property
    def _lease_key(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"

    def _acquire(self) -> bool:
        while not self._shutdown.is_set():
            if self._try_acquire_or_renew():
                self._leading.set()
                log.info("became leader", extra={"lease": self._lease_key, "identity": self.config.identity})
                return True
            self._shutdown.wait(self.config.retry_period)
        return False

    def _renew_loop(self) -> None:
        last_renew = self._clock()
        while not self._shutdown.wait(self.config.retry_period):
            if self._try_acquire_or_renew():
                last_renew = self._clock()
                continue
            if self._clock() - last_renew >= self.config.renew_deadline:
                log.warning("could not renew the lease within %.1fs", self.config.renew_deadline,
                            extra={"lease": self._lease_key, "identity": self.config.identity})
                return

    def _record(self, lease: Obj) -> tuple[str | None, str | None]:
        spec = lease.get("spec") or {}
        return spec.get("holderIdentity"), spec.get("renewTime")

    def _observe(self, lease: Obj) -> None:
        key = self._record(lease)
        if key != self._observed_key:
            self._observed_key = key
            self._observed_at = self._clock()
        self._observed = lease

    def _spec(self, acquire_time: str | None, transitions: int) -> Obj:
        now = _micro_time()
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        try:
            try:
                lease = self.client.get(LEASES, cfg.name, cfg.namespace)
            except ApiError as e:
                if not e.not_found:
                    raise
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": cfg.name, "namespace": cfg.namespace}, "spec": self._spec(None, 0)}
                self._observe(self.client.create(LEASES, body))
                return True
            self._observe(lease)
            holder, _ = self._record(lease)
            spec = lease.get("spec") or {}
            mine = holder == cfg.identity
            expired = self._clock() > self._observed_at + float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
            if holder and not mine and not expired:
                return False
            transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
            lease["spec"] = self._spec(spec.get("acquireTime") if mine else None, transitions)
            self._observe(self.client.replace(LEASES, lease))  # resourceVersion makes it a CAS
            return True
        except ApiError as e:
            log.info("lease round failed: %s", e, extra={"lease": self._lease_key, "identity": cfg.identity})
            return False

    def _release(self) -> bool:
        lease = self._observed
        if lease is None or self._record(lease)[0] != self.config.identity:
            return False
        lease["spec"] = {**(lease.get("spec") or {}), "holderIdentity": None, "leaseDurationSeconds": 1,
                         "renewTime": _micro_time()}
        try:
            self.client.replace(LEASES, lease)
            return True
        except ApiError as e:
            log.warning("could not release the lease: %s", e, extra={"lease": self._lease_key})
            return False
