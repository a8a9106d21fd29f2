"""The Kubernetes runtime the controllers are built on (client-go's model, in Python).

Read side:  `Cache` (shared `Informer`s, each list+watch into a `Store` with indexes).
Work:       `WorkQueue` (dedup, one worker per key, per-key backoff, add_after) and
            `Controller` (informer events -> keys -> N workers -> `reconcile(key) -> Result`).
Write side: `Applier` (guarded JSON patches, status via /status, no request when unchanged),
            `EventRecorder` (folding core/v1 Events), `LeaderElector` (coordination.k8s.io Lease).
Transport:  `KubeClient` (dicts over the `kubernetes` package's connection pool; counts requests).

Objects are plain dicts as the API server sends them; keys are "namespace/name"
(or "name" for cluster-scoped objects).
"""

from reconciler.kube.applier import Applier, ApplyResult
from reconciler.kube.cache import Cache
from reconciler.kube.client import READ_VERBS, WRITE_VERBS, KubeClient, RequestStats, guarded_ops, request_origin
from reconciler.kube.controller import RECONCILE_ORIGIN, Controller, KeyMapper, Reconcile, Result, same_key
from reconciler.kube.errors import ApiError, ConflictError, WatchGone
from reconciler.kube.events import NORMAL, WARNING, EventRecorder
from reconciler.kube.informer import Backoff, Event, EventType, Handler, Informer
from reconciler.kube.leaderelection import LeaderElector, LeaseConfig
from reconciler.kube.patch import main_patch, merge, status_patch
from reconciler.kube.resources import (
    CONFIGMAPS,
    EVENTS,
    LEASES,
    NAMESPACES,
    Obj,
    ResourceType,
    object_key,
    resource_version,
    split_key,
)
from reconciler.kube.store import NAMESPACE_INDEX, IndexFunc, Store
from reconciler.kube.workqueue import ExponentialRateLimiter, RateLimiter, WorkQueue

__all__ = [
    "CONFIGMAPS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NAMESPACE_INDEX",
    "NORMAL",
    "READ_VERBS",
    "RECONCILE_ORIGIN",
    "WARNING",
    "WRITE_VERBS",
    "ApiError",
    "Applier",
    "ApplyResult",
    "Backoff",
    "Cache",
    "ConflictError",
    "Controller",
    "Event",
    "EventRecorder",
    "EventType",
    "ExponentialRateLimiter",
    "Handler",
    "IndexFunc",
    "Informer",
    "KeyMapper",
    "KubeClient",
    "LeaderElector",
    "LeaseConfig",
    "Obj",
    "RateLimiter",
    "Reconcile",
    "RequestStats",
    "ResourceType",
    "Result",
    "Store",
    "WatchGone",
    "WorkQueue",
    "guarded_ops",
    "main_patch",
    "merge",
    "object_key",
    "request_origin",
    "resource_version",
    "same_key",
    "split_key",
    "status_patch",
]
