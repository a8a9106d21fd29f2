"""Reading one DRControl from each DR cluster, with bounded time per API call."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from reconciler.api.common import GROUP, VERSION
from reconciler.integrations.readiness import ClusterView

PLURAL = "drcontrols"
IN_CLUSTER = "in-cluster"


class DRControlReader(Protocol):
    """Reads one DRControl; returns None when it does not exist, raises on anything else."""

    def __call__(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class KubeReader:
    api: client.CustomObjectsApi
    # (connect, read) seconds: a cluster that hangs must not hold Argo CD's request (30 s default).
    timeout: tuple[float, float] = (3.0, 5.0)

    def __call__(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            obj: Mapping[str, Any] = self.api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return obj


def kube_reader(source: str, timeout: tuple[float, float] = (3.0, 5.0)) -> KubeReader:
    """A reader from a kubeconfig path, or from the pod's service account when `source` is "in-cluster"."""
    if source == IN_CLUSTER:
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        api = client.ApiClient(cfg)
    else:
        if not Path(source).is_file():
            raise ValueError(f"kubeconfig {source} does not exist")
        try:
            api = config.new_client_from_config(config_file=source)
        except Exception as e:  # the loader raises ConfigException, TypeError, yaml errors...
            raise ValueError(f"kubeconfig {source} cannot be loaded ({type(e).__name__})") from e
    return KubeReader(client.CustomObjectsApi(api), timeout)


def parse_cluster_arg(arg: str) -> tuple[str, str]:
    """`NAME=KUBECONFIG` or `NAME=in-cluster`."""
    name, sep, source = arg.partition("=")
    if not sep or not name or not source:
        raise ValueError(f"--cluster {arg!r}: expected NAME=KUBECONFIG or NAME={IN_CLUSTER}")
    return name, source


def _describe(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return f"API server answered {e.status} {e.reason}".strip()
    if isinstance(e, urllib3.exceptions.HTTPError):
        return f"cannot reach the API server ({type(e).__name__})"
    return f"{type(e).__name__}: {e}"


def read_all(readers: Mapping[str, DRControlReader], namespace: str, name: str,
             pool: concurrent.futures.Executor) -> Sequence[ClusterView]:
    """Read every cluster in parallel, so one slow cluster costs its timeout once, not per cluster."""
    futures = {cluster: pool.submit(read, namespace, name) for cluster, read in readers.items()}
    views: list[ClusterView] = []
    for cluster, fut in futures.items():
        try:
            views.append(ClusterView(cluster, obj=fut.result()))
        except Exception as e:  # any failure to read means "unknown", never "not ready"
            views.append(ClusterView(cluster, error=_describe(e)))
    return views
