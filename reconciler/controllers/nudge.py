"""Direct nudges: after writing something the peer waits on, poke the peer's DRControl.

Optional (DRCluster `spec.peerEndpoint`). The peer's operator sees its DRControl
change, drops its cached S3 snapshot and reconciles at once instead of on its
next poll. The annotation's value is a random token and is never trusted: it only
triggers a reconcile, which still decides from S3 alone. Nudges run on a small
thread pool so a slow or unreachable peer API never delays a reconcile.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
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


class PeerNudger:
    def __init__(self, cache: Cache, read_secret: Callable[[str, str], Obj], workers: int = 2,
                 timeout: float = 5.0) -> None:
        self.cache = cache
        self.read_secret = read_secret
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nudge")
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[tuple[str, str], KubeClient]] = {}
        self.sent = 0
        self.failed = 0

    def _endpoint(self, peer: str) -> dict[str, Any] | None:
        for dc in self.cache.list(DRCLUSTER):
            spec = dc.get("spec") or {}
            if spec.get("clusterName", dc["metadata"]["name"]) == peer:
                ep = spec.get("peerEndpoint")
                return dict(ep) if isinstance(ep, dict) else None
        return None

    def _client(self, peer: str, ep: dict[str, Any]) -> KubeClient:
        ref = ep["secretRef"]
        secret = self.read_secret(ref["namespace"], ref["name"])
        version = (str(secret["metadata"].get("resourceVersion", "")), str(ep.get("apiServer", "")))
        with self._lock:
            hit = self._clients.get(peer)
            if hit is not None and hit[0] == version:
                return hit[1]
        raw = (secret.get("data") or {}).get(KUBECONFIG_KEY)
        if not raw:
            raise ValueError(f"Secret {ref['namespace']}/{ref['name']} has no key {KUBECONFIG_KEY}")
        api = k8s_config.new_client_from_config_dict(yaml.safe_load(base64.b64decode(raw)))
        if ep.get("apiServer"):
            api.configuration.host = str(ep["apiServer"])  # the DRCluster names the server; the Secret, who we are
        client = KubeClient(api, request_timeout=self.timeout)
        with self._lock:
            self._clients[peer] = (version, client)
        return client

    def nudge(self, peer: str, namespace: str, name: str) -> None:
        """Ask the peer to reconcile `namespace/name` soon; returns at once, never raises."""
        ep = self._endpoint(peer)
        if ep is None:
            return
        self._pool.submit(self._send, peer, ep, namespace, name)

    def _send(self, peer: str, ep: dict[str, Any], namespace: str, name: str) -> None:
        try:
            client = self._client(peer, ep)
            client.merge_patch(DRCONTROL, name, namespace,
                               {"metadata": {"annotations": {NUDGE_ANNOTATION: secrets.token_hex(8)}}})
            self.sent += 1
        except Exception as e:  # a nudge is best effort: the peer's next poll gets there anyway
            if isinstance(e, ApiError) and e.not_found:
                return  # the peer does not protect this app (yet)
            self.failed += 1
            log.warning("could not nudge %s: %s", peer, e, extra={"key": f"{namespace}/{name}"})

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
