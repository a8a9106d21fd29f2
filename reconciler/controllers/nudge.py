"""Direct nudges: after writing something the peer waits on, poke the peer's DRControl.

Optional (DRCluster `spec.peerEndpoint`). The peer's operator sees its DRControl
change, polls our S3 objects at once instead of on its next poll, and reconciles
every app that poll finds changed (not only the nudged one). So one nudge tells
of every write before it: nudges to a peer are sent one at a time, at most one
per `send_gap`, and the writes made meanwhile are told by the next (which names
the app of the latest). A relocate of 1,000 apps used to send a PATCH to the
peer's API server for every write, several per app. The annotation's value is a
random token and is never trusted: it only triggers a poll, and decisions still
come from S3 alone. Nudges run on a small thread pool so a slow or unreachable
peer API never delays a reconcile.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from kubernetes import config as k8s_config

from reconciler.api import DRCLUSTER, DRCONTROL
from reconciler.kube import Cache, KubeClient, Obj
from reconciler.kube.errors import ApiError

log = logging.getLogger(__name__)

NUDGE_ANNOTATION = "drcontrol.ramendr.openshift.io/nudge"
KUBECONFIG_KEY = "kubeconfig"
#: Nudges to one peer are at least this far apart (the peer polls at most once a second for them).
SEND_GAP = 0.5
#: The apps of the latest writes a coalesced nudge may name: when the peer has no DRControl for the
#: latest (it does not protect that app, or not yet), the nudge goes to the one before.
NUDGE_CANDIDATES = 4


# Kubeconfig user entries that run a program or read the operator's own files: a Secret that names
# them would run commands inside the operator, or send its own ServiceAccount token to the peer.
_REFUSED_USER_FIELDS = ("exec", "auth-provider", "tokenFile", "client-certificate", "client-key", "username",
                        "password")
_REFUSED_CLUSTER_FIELDS = ("certificate-authority", "proxy-url")


class UnsafeKubeconfig(ValueError):
    """The peer kubeconfig asks for something the operator refuses to do with it."""


def _current(cfg: dict[str, Any], section: str, name: str, where: str) -> dict[str, Any]:
    for item in cfg.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            inner = item.get(section[:-1])
            if isinstance(inner, dict):
                return inner
    raise UnsafeKubeconfig(f"{where}: kubeconfig has no {section[:-1]} {name!r} for its current context")


def load_peer_kubeconfig(data: bytes, where: str) -> dict[str, Any]:
    """Parse a peer kubeconfig and keep only its current context, refusing exec/auth-provider and file paths."""
    try:
        cfg = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise UnsafeKubeconfig(f"{where}: kubeconfig is not YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise UnsafeKubeconfig(f"{where}: kubeconfig is not a mapping")
    ctx_name = cfg.get("current-context")
    contexts = [c for c in cfg.get("contexts") or [] if isinstance(c, dict)]
    if not ctx_name and len(contexts) == 1:
        ctx_name = contexts[0].get("name")
    ctx = _current(cfg, "contexts", str(ctx_name or ""), where)
    user = _current(cfg, "users", str(ctx.get("user") or ""), where)
    cluster = _current(cfg, "clusters", str(ctx.get("cluster") or ""), where)
    bad = [f"users[].user.{k}" for k in _REFUSED_USER_FIELDS if k in user]
    bad += [f"clusters[].cluster.{k}" for k in _REFUSED_CLUSTER_FIELDS if k in cluster]
    if bad:
        raise UnsafeKubeconfig(f"{where}: kubeconfig uses {', '.join(bad)}, which the operator refuses (use "
                               "token or client-certificate-data/client-key-data, and certificate-authority-data)")
    # Only the one context is kept, so nothing else in the file is ever loaded.
    return {"apiVersion": "v1", "kind": "Config", "current-context": "peer",
            "contexts": [{"name": "peer", "context": {"cluster": "peer", "user": "peer"}}],
            "clusters": [{"name": "peer", "cluster": cluster}], "users": [{"name": "peer", "user": user}]}


def check_api_server(cfg: dict[str, Any], api_server: str, where: str) -> None:
    """The credentials go only where the Secret says: a DRCluster `apiServer` must name that same server.

    Anyone who may edit a DRCluster could otherwise send the peer credentials to a server of theirs.
    """
    server = str(cfg["clusters"][0]["cluster"].get("server") or "")
    if not server.startswith("https://"):
        raise UnsafeKubeconfig(f"{where}: the kubeconfig server must be an https:// URL, got {server!r}")
    if api_server and api_server.rstrip("/") != server.rstrip("/"):
        raise UnsafeKubeconfig(f"DRCluster peerEndpoint.apiServer {api_server!r} is not the server of {where} "
                               f"({server!r}); refusing to send its credentials elsewhere")


def peer_config(secret: Obj, ep: dict[str, Any]) -> dict[str, Any]:
    """The kubeconfig a peerEndpoint's Secret allows, checked; raises ValueError (UnsafeKubeconfig) saying why not."""
    ref = ep.get("secretRef") or {}
    where = f"Secret {ref.get('namespace')}/{ref.get('name')}"
    raw = (secret.get("data") or {}).get(KUBECONFIG_KEY)
    if not raw:
        raise UnsafeKubeconfig(f"{where} has no key {KUBECONFIG_KEY}")
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        raise UnsafeKubeconfig(f"{where}: key {KUBECONFIG_KEY} is not base64") from None
    cfg = load_peer_kubeconfig(data, where)
    check_api_server(cfg, str(ep.get("apiServer") or ""), where)
    return cfg


_SENT, _MISSING, _FAILED = "sent", "missing", "failed"


class PeerNudger:
    """Sends nudges. The peer's client is built from its Secret, which is read again at most every
    `secret_recheck` seconds (a relocate of N apps sends several nudges per app, and each used to
    read the Secret first), and at once after the peer refused the credentials."""

    def __init__(self, cache: Cache, read_secret: Callable[[str, str], Obj], workers: int = 2,
                 timeout: float = 5.0, secret_recheck: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic, unreachable_pause: float = 10.0,
                 send_gap: float = SEND_GAP) -> None:
        self.cache = cache
        self.send_gap = send_gap
        self.read_secret = read_secret
        self.timeout = timeout
        self.secret_recheck = secret_recheck
        self._mono = monotonic
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nudge")
        self._lock = threading.Lock()
        # peer -> ((Secret resourceVersion, apiServer), client, monotonic time the Secret was read)
        self._clients: dict[str, tuple[tuple[str, str], KubeClient, float]] = {}
        # A peer whose API server did not answer is not nudged again for `unreachable_pause`: in a
        # site failover every report would otherwise try the lost site (its poll gets there anyway).
        self.unreachable_pause = unreachable_pause
        self._paused_until: dict[str, float] = {}
        # Per peer: the apps of the latest writes not told yet (newest last, at most
        # NUDGE_CANDIDATES), and whether a sender runs for them.
        self._pending: dict[str, list[tuple[str, str]]] = {}
        self._busy: set[str] = set()
        self._stopping = threading.Event()
        self.sent = 0
        self.failed = 0
        self.skipped = 0
        self.coalesced = 0  # writes told by a nudge sent for a later one

    def _endpoint(self, peer: str) -> dict[str, Any] | None:
        for dc in self.cache.list(DRCLUSTER):
            spec = dc.get("spec") or {}
            if spec.get("clusterName", dc["metadata"]["name"]) == peer:
                ep = spec.get("peerEndpoint")
                return dict(ep) if isinstance(ep, dict) else None
        return None

    def _client(self, peer: str, ep: dict[str, Any]) -> KubeClient:
        with self._lock:
            hit = self._clients.get(peer)
        now = self._mono()
        if hit is not None and hit[0][1] == str(ep.get("apiServer", "")) and now - hit[2] < self.secret_recheck:
            return hit[1]
        ref = ep["secretRef"]
        secret = self.read_secret(ref["namespace"], ref["name"])
        version = (str(secret["metadata"].get("resourceVersion", "")), str(ep.get("apiServer", "")))
        if hit is not None and hit[0] == version:
            client = hit[1]
        else:
            api = k8s_config.new_client_from_config_dict(peer_config(secret, ep))
            client = KubeClient(api, request_timeout=self.timeout)
        with self._lock:
            self._clients[peer] = (version, client, now)
        return client

    def nudge(self, peer: str, namespace: str, name: str) -> None:
        """Tell the peer we wrote something about `namespace/name`; returns at once, never raises."""
        ep = self._endpoint(peer)
        if ep is None:
            return
        with self._lock:
            if self._mono() < self._paused_until.get(peer, float("-inf")):
                self.skipped += 1
                return
            apps = self._pending.setdefault(peer, [])
            if apps:
                self.coalesced += 1
            if (namespace, name) in apps:
                apps.remove((namespace, name))
            apps.append((namespace, name))
            del apps[:-NUDGE_CANDIDATES]
            if peer in self._busy:
                return  # the running sender tells it with its next nudge
            self._busy.add(peer)
        self._pool.submit(self._drain, peer, ep)

    def _drain(self, peer: str, ep: dict[str, Any]) -> None:
        """Send the peer's pending nudge, then wait `send_gap` for writes to gather; until none is left."""
        while True:
            with self._lock:
                targets = self._pending.pop(peer, None)
                if not targets or self._stopping.is_set():
                    self._busy.discard(peer)
                    return
            # Newest first: any of them tells of every write before the latest.
            outcome = _MISSING
            for target in reversed(targets):
                outcome = self._send(peer, ep, *target)
                if outcome != _MISSING:
                    break
            if outcome == _FAILED:
                with self._lock:
                    self._busy.discard(peer)
                return
            self._stopping.wait(self.send_gap)

    def _send(self, peer: str, ep: dict[str, Any], namespace: str, name: str) -> str:
        """One nudge: _SENT; _MISSING when the peer has no such DRControl; _FAILED when its API server
        did not take it (the next poll gets there)."""
        try:
            client = self._client(peer, ep)
            client.merge_patch(DRCONTROL, name, namespace,
                               {"metadata": {"annotations": {NUDGE_ANNOTATION: secrets.token_hex(8)}}})
            self.sent += 1
            return _SENT
        except Exception as e:  # a nudge is best effort: the peer's next poll gets there anyway
            if isinstance(e, ApiError) and e.not_found:
                return _MISSING  # the peer does not protect this app (yet)
            if isinstance(e, ApiError) and e.status in (401, 403):
                with self._lock:
                    self._clients.pop(peer, None)  # rotated credentials: read the Secret again next time
            elif not isinstance(e, ApiError) or e.status == 0 or e.status >= 500:
                with self._lock:
                    self._paused_until[peer] = self._mono() + self.unreachable_pause
            self.failed += 1
            log.warning("could not nudge %s: %s", peer, e, extra={"key": f"{namespace}/{name}"})
            return _FAILED

    def counts(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "skipped": self.skipped, "coalesced": self.coalesced}

    def stop(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
