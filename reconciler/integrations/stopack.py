"""Tell the operator when Argo CD has taken the application away from a cluster.

A relocate must not run its final sync or demote the VRG while the application still runs on the
source (invariant I6). With Flux the operator sees that itself (its Kustomization is gone). With
Argo CD the Applications live on Argo CD's cluster, which the operator cannot read; the plugin
can. For a DRControl with `spec.application.argoCD`, once ReadyForApplication is False on a
cluster and no Application generated for that cluster by an ApplicationSet asking about the
DRControl exists any more, the plugin writes the withdrawal's transition time into the
DRControl's `ramendr.openshift.io/application-stopped` annotation on that cluster; the operator
waits for exactly that value. An Application with Argo CD's resources finalizer disappears only
after its resources were deleted from the destination, so "gone" means the application stopped.

The check waits `grace` seconds after the plugin last answered with that cluster: Argo CD may be
creating an Application from an answer given just before the withdrawal.

Pure parts are functions; `Acknowledger` holds what is pending and does the calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from reconciler.integrations.readiness import READY_FOR_APPLICATION, condition
from reconciler.integrations.refresher import AppSetApi, asks_about
from reconciler.plan.application import STOPPED_ANNOTATION, argocd_ref

log = logging.getLogger("ramen_p2p.stop_ack")

Key = tuple[str, str, str]  # (cluster, namespace, DRControl name)


def withdrawal_to_acknowledge(obj: Mapping[str, Any]) -> str | None:
    """The ReadyForApplication=False transition time the operator waits to see acknowledged, if any."""
    if argocd_ref(obj) is None:
        return None  # the operator waits for no acknowledgement
    c = condition(obj, READY_FOR_APPLICATION)
    if c is None or c.get("status") == "True" or not isinstance(c.get("lastTransitionTime"), str):
        return None
    acked = ((obj.get("metadata") or {}).get("annotations") or {}).get(STOPPED_ANNOTATION)
    return None if acked == c["lastTransitionTime"] else str(c["lastTransitionTime"])


def application_remains(applications: Sequence[Mapping[str, Any]], appsets: set[str], cluster: str) -> bool:
    """Whether one of `appsets` still has an Application for `cluster` (by destination name)."""
    for a in applications:
        owners = (a.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("kind") == "ApplicationSet" and o.get("name") in appsets for o in owners):
            continue
        if ((a.get("spec") or {}).get("destination") or {}).get("name") == cluster:
            return True
    return False


class ApplicationApi(Protocol):
    def list(self) -> Sequence[Mapping[str, Any]]: ...


class Annotator(Protocol):
    def __call__(self, cluster: str, namespace: str, name: str, key: str, value: str) -> None: ...


class Acknowledger:
    """Pending withdrawals, from the DRControl watches; checked against Argo CD's Applications."""

    def __init__(self, appsets: AppSetApi, applications: ApplicationApi, annotate: Annotator, configmap: str,
                 grace: float = 2.0, interval: float = 0.5, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.appsets, self.applications, self.annotate = appsets, applications, annotate
        self.configmap, self.grace, self.interval, self.monotonic = configmap, grace, interval, monotonic
        self._pending: dict[Key, str] = {}
        self._answered: dict[Key, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def observe(self, cluster: str, event: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (cluster, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        want = None if event == "DELETED" else withdrawal_to_acknowledge(obj)
        with self._lock:
            if want is None:
                self._pending.pop(key, None)
            else:
                self._pending[key] = want

    def answered(self, namespace: str, name: str, clusters: Sequence[str]) -> None:
        """The plugin told Argo CD to run the application on `clusters`."""
        now = self.monotonic()
        with self._lock:
            for c in clusters:
                self._answered[(c, namespace, name)] = now

    def check(self) -> int:
        """Acknowledge every pending withdrawal whose Application is gone; returns how many."""
        with self._lock:
            pending = dict(self._pending)
        if not pending:
            return 0
        listed_at = self.monotonic()
        appsets = self.appsets.list()
        applications = self.applications.list()
        done = 0
        for (cluster, ns, name), since in pending.items():
            with self._lock:
                last = self._answered.get((cluster, ns, name))
            if last is not None and listed_at - last < self.grace:
                continue
            asking = {str((a.get("metadata") or {}).get("name")) for a in appsets
                      if asks_about(a, self.configmap, ns, name)}
            if application_remains(applications, asking, cluster):
                continue
            self.annotate(cluster, ns, name, STOPPED_ANNOTATION, since)
            log.info("DRControl %s/%s on %s: Argo CD's Application is gone; acknowledged the withdrawal at %s",
                     ns, name, cluster, since)
            with self._lock:
                if self._pending.get((cluster, ns, name)) == since:
                    del self._pending[(cluster, ns, name)]
            done += 1
        return done

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as e:  # an API error delays an acknowledgement, never ends the loop
                log.warning("could not check Argo CD's Applications (%s: %s)", type(e).__name__, e)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="stop-ack", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
