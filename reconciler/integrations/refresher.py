"""Tell Argo CD at once when an application may move: refresh the ApplicationSets that ask the plugin.

Argo CD asks a plugin generator again only every `requeueAfterSeconds`, so on its own an
Application follows a failover or relocate up to that long after ReadyForApplication changed.
The refresher watches the DRControls of every DR cluster; when ReadyForApplication (or the
dr-state generation, which decides between two clusters that both say True) changes for one,
it annotates each ApplicationSet whose plugin generator names that DRControl with
`argocd.argoproj.io/application-set-refresh: "true"`. The ApplicationSet controller reconciles
an ApplicationSet when it changes, generates again, and removes the annotation.

Pure parts (what changed, which ApplicationSets ask about it) are functions; `Refresher` holds
the watches and the patch calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.integrations.readiness import READY_FOR_APPLICATION, condition

log = logging.getLogger("ramen_p2p.appset_refresher")

REFRESH_ANNOTATION = "argocd.argoproj.io/application-set-refresh"
APPSET_GROUP, APPSET_VERSION, APPSET_PLURAL = "argoproj.io", "v1alpha1", "applicationsets"


@dataclass(frozen=True)
class Placement:
    """What of a DRControl decides the plugin's answer."""

    ready: bool
    generation: int


def placement(obj: Mapping[str, Any]) -> Placement:
    c = condition(obj, READY_FOR_APPLICATION)
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    gen = (status or {}).get("generation")
    return Placement(ready=c is not None and c.get("status") == "True",
                     generation=gen if isinstance(gen, int) and not isinstance(gen, bool) else 0)


def _plugin_generators(generators: Any) -> Iterator[Mapping[str, Any]]:
    """Every plugin generator, also those nested in matrix and merge generators."""
    for g in generators if isinstance(generators, list) else []:
        if not isinstance(g, Mapping):
            continue
        if isinstance(g.get("plugin"), Mapping):
            yield g["plugin"]
        for nested in ("matrix", "merge"):
            if isinstance(g.get(nested), Mapping):
                yield from _plugin_generators(g[nested].get("generators"))


def asks_about(appset: Mapping[str, Any], configmap: str, namespace: str, name: str) -> bool:
    """Whether this ApplicationSet asks our plugin (by its ConfigMap) about DRControl namespace/name."""
    for plugin in _plugin_generators((appset.get("spec") or {}).get("generators")):
        if (plugin.get("configMapRef") or {}).get("name") != configmap:
            continue
        params = (plugin.get("input") or {}).get("parameters") or {}
        if params.get("namespace") == namespace and params.get("drcontrol") == name:
            return True
    return False


class AppSetApi(Protocol):
    def list(self) -> Sequence[Mapping[str, Any]]: ...

    def annotate(self, name: str, key: str, value: str) -> None: ...


# A watch of one cluster's DRControls: yields (event type, object) until it ends or fails.
WatchFn = Callable[[], Iterator[tuple[str, Mapping[str, Any]]]]


class Refresher:
    """Watches DRControls on each DR cluster and refreshes the ApplicationSets that ask about one that moved."""

    def __init__(self, watches: Mapping[str, WatchFn], appsets: AppSetApi, configmap: str,
                 retry: float = 5.0, observers: Sequence[Callable[[str, str, Mapping[str, Any]], None]] = ()) -> None:
        self.watches = dict(watches)
        # Also given every watch event (the stop acknowledger follows the same DRControls).
        self.observers = list(observers)
        self.appsets = appsets
        self.configmap = configmap
        self.retry = retry
        self._seen: dict[tuple[str, str, str], Placement] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.refreshed = 0  # ApplicationSets annotated, for the log and tests

    def observe(self, cluster: str, event: str, obj: Mapping[str, Any]) -> bool:
        """Record one watch event; True when the DRControl's placement changed (not on the first sight)."""
        meta = obj.get("metadata") or {}
        key = (cluster, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        now = None if event == "DELETED" else placement(obj)
        with self._lock:
            before = self._seen.get(key)
            if now is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = now
        # First sight (a start or a relist) is no transition: Argo CD's own poll covers what happened before.
        return before is not None and before != now

    def refresh(self, namespace: str, name: str) -> int:
        n = 0
        for a in self.appsets.list():
            if asks_about(a, self.configmap, namespace, name):
                appset = str((a.get("metadata") or {}).get("name"))
                self.appsets.annotate(appset, REFRESH_ANNOTATION, "true")
                n += 1
                log.info("refresh requested of ApplicationSet %s: DRControl %s/%s changed", appset, namespace, name)
        with self._lock:
            self.refreshed += n
        return n

    def _follow(self, cluster: str, watch: WatchFn) -> None:
        while not self._stop.is_set():
            try:
                for event, obj in watch():
                    if self._stop.is_set():
                        return
                    for o in self.observers:
                        o(cluster, event, obj)
                    if self.observe(cluster, event, obj):
                        meta = obj.get("metadata") or {}
                        self.refresh(str(meta.get("namespace")), str(meta.get("name")))
            except Exception as e:  # a watch ends on any error; it is started again, never fatal
                log.warning("watch of DRControls on %s failed (%s); again in %.0fs", cluster, type(e).__name__,
                            self.retry)
                self._stop.wait(self.retry)

    def start(self) -> None:
        for cluster, watch in self.watches.items():
            threading.Thread(target=self._follow, args=(cluster, watch), name=f"refresh-{cluster}",
                             daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def kube_watch(api: Any, timeout: float = 300.0) -> WatchFn:
    """A WatchFn over `kubernetes.client.CustomObjectsApi` (list then watch, all namespaces)."""
    from kubernetes import watch as kwatch

    from reconciler.api.common import GROUP, VERSION

    def run() -> Iterator[tuple[str, Mapping[str, Any]]]:
        listed = api.list_cluster_custom_object(GROUP, VERSION, "drcontrols", _request_timeout=30)
        for obj in listed.get("items") or []:
            yield "ADDED", obj
        rv = (listed.get("metadata") or {}).get("resourceVersion")
        w = kwatch.Watch()
        started = time.monotonic()
        for ev in w.stream(api.list_cluster_custom_object, GROUP, VERSION, "drcontrols", resource_version=rv,
                           timeout_seconds=int(timeout), allow_watch_bookmarks=True):
            if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                yield str(ev["type"]), ev["object"]
        log.debug("watch ended after %.0fs; listing again", time.monotonic() - started)

    return run


@dataclass
class KubeAppSets:
    """ApplicationSets of one namespace through `kubernetes.client.CustomObjectsApi`."""

    api: Any
    namespace: str

    def list(self) -> Sequence[Mapping[str, Any]]:
        out = self.api.list_namespaced_custom_object(APPSET_GROUP, APPSET_VERSION, self.namespace, APPSET_PLURAL,
                                                     _request_timeout=30)
        items: Sequence[Mapping[str, Any]] = out.get("items") or []
        return items

    def annotate(self, name: str, key: str, value: str) -> None:
        self.api.patch_namespaced_custom_object(APPSET_GROUP, APPSET_VERSION, self.namespace, APPSET_PLURAL, name,
                                                {"metadata": {"annotations": {key: value}}}, _request_timeout=30)


@dataclass
class KubeApplications:
    """Argo CD Applications of one namespace through `kubernetes.client.CustomObjectsApi`."""

    api: Any
    namespace: str

    def list(self) -> Sequence[Mapping[str, Any]]:
        out = self.api.list_namespaced_custom_object(APPSET_GROUP, APPSET_VERSION, self.namespace, "applications",
                                                     _request_timeout=30)
        items: Sequence[Mapping[str, Any]] = out.get("items") or []
        return items
