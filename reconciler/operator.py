"""ramen-operator: the unified DR operator that runs, identically, on each DR cluster."""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import json
import logging
import os
import signal
import sys
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from reconciler import __version__
from reconciler.config import CONFIGMAP_NAME, P2P_CONFIGMAP_NAME, ConfigError, parse_config
from reconciler.durations import parse_duration
from reconciler.kube import CONFIGMAPS, KubeClient
from reconciler.kube.errors import ApiError
from reconciler.manager import DEFAULT_WORKERS, Manager, Options, serve_http
from reconciler.metrics_auth import KubeAuthorizer
from reconciler.s3peer.envelope import is_label

log = logging.getLogger("ramen-operator")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the object key and controller when a record carries them."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": self.formatTime(record), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        for k in ("key", "controller", "cluster"):
            if hasattr(record, k):
                out[k] = getattr(record, k)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


#: Connections kept to the API server beside one per worker: the informers' watches and the other controllers.
API_CONNECTIONS_BESIDE_WORKERS = 16


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ramen-operator", description="The ramen-p2p DR operator (one per DR cluster).")
    p.add_argument("--version", action="version", version=f"ramen-operator {__version__}")
    p.add_argument("--cluster-name", required=True, help="name of the DR cluster this operator runs on")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig path (in-cluster config when omitted)")
    p.add_argument("--namespace", default="ramen-system", help="namespace of the operator's ConfigMap and Lease")
    p.add_argument("--peer-poll-interval", type=_duration, default=30.0, metavar="DURATION",
                   help="how often the peer's S3 objects are polled (default 30s)")
    p.add_argument("--heartbeat-interval", type=_duration, default=60.0, metavar="DURATION",
                   help="how often this cluster's heartbeat is written (default 60s)")
    p.add_argument("--peer-stale-after", type=_duration, default=None, metavar="DURATION",
                   help="peer is stale when its heartbeat has not changed for this long (default 3m)")
    p.add_argument("--metrics-bind-address", default=":8080", help="address of /metrics ('0' disables)")
    p.add_argument("--health-probe-bind-address", default=":8081", help="address of /healthz and /readyz")
    p.add_argument("--metrics-auth", choices=("kubernetes", "none"), default="kubernetes",
                   help="who may read /metrics: identities the API server allows to get /metrics "
                        "(TokenReview + SubjectAccessReview), or anyone")
    p.add_argument("--leader-elect", action="store_true", help="run only while holding the Lease")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                   help="DRControl reconcile workers (they mostly wait on S3 and the API server)")
    p.add_argument("--watch-namespace", action="append", default=[], metavar="NAMESPACE",
                   help="watch DRControls only in this namespace (repeatable; default: all namespaces)")
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    return p


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX does (an explicit MALLOC_ARENA_MAX wins).

    glibc gives threads that allocate at once arenas of their own, up to eight per core; with
    the operator's few dozen threads (workers, informers, S3 fetches) what they free stays
    spread over many arenas and RSS grows well past what is in use (Python's small objects do
    not go through malloc, so few arenas contend). False where there is no glibc (musl has no
    per-thread arenas).
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limit_malloc_arenas()  # before any thread starts
    # `kill -USR1 <pid>` prints every thread's stack: how to see what a stuck operator waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if args.log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("botocore").setLevel(logging.WARNING)

    if not is_label(args.cluster_name):
        print(f"ramen-operator: --cluster-name {args.cluster_name!r} must be a DNS-1123 label (lower-case "
              "letters, digits and '-', at most 63 characters), as in the DRPolicy's drClusters", file=sys.stderr)
        return 2
    api = _api_client(args.kubeconfig, pool_size=args.workers + API_CONNECTIONS_BESIDE_WORKERS)
    if api is None:
        return 2
    kube = KubeClient(api)
    configmaps: list[dict[str, Any]] = []
    for name, holds in ((CONFIGMAP_NAME, "the RamenConfig (s3StoreProfiles) this cluster uses"),
                        (P2P_CONFIGMAP_NAME, "ramen-p2p's settings (key prefix, HMAC Secret, webhook)")):
        try:
            configmaps.append(kube.get(CONFIGMAPS, name, args.namespace))
        except ApiError as e:
            what = "not found" if e.not_found else str(e)
            print(f"ramen-operator: ConfigMap {args.namespace}/{name}: {what}. Create it with {holds}; "
                  "see `ramenctl render install`.", file=sys.stderr)
            return 2
    try:
        config = parse_config(configmaps[0], configmaps[1], args.namespace)
    except ConfigError as e:
        print(f"ramen-operator: invalid configuration: {e}", file=sys.stderr)
        return 2

    options = Options(
        cluster_name=args.cluster_name,
        namespace=args.namespace,
        poll_interval=args.peer_poll_interval,
        heartbeat_interval=args.heartbeat_interval,
        stale_after=args.peer_stale_after or 3 * args.heartbeat_interval,
        workers=args.workers,
        leader_elect=args.leader_elect,
        watch_namespaces=tuple(dict.fromkeys(ns for arg in args.watch_namespace for ns in arg.split(",") if ns)),
    )
    try:
        manager = Manager(api, options, config)
    except (ApiError, ValueError) as e:
        print(f"ramen-operator: cannot start: {e}", file=sys.stderr)
        return 2
    authorizer = KubeAuthorizer(manager.client) if args.metrics_auth == "kubernetes" else None
    servers = [serve_http(addr, manager, authorizer) for addr in dict.fromkeys(
        (args.metrics_bind_address, args.health_probe_bind_address)) if addr != "0"]
    signal.signal(signal.SIGTERM, lambda *_: manager.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: manager.stop_event.set())
    log.info("starting", extra={"cluster": args.cluster_name})
    manager.run()
    for s in servers:
        s.shutdown()
    if manager.lost_leadership:
        log.error("lost the leader Lease (API server unreachable or another holder); exiting to be restarted",
                  extra={"cluster": args.cluster_name})
        return 1
    log.info("stopped", extra={"cluster": args.cluster_name})
    return 0


def _api_client(kubeconfig: str | None, pool_size: int) -> k8s.ApiClient | None:
    """The API client, or None after printing why the kubeconfig (or in-cluster config) is unusable.

    Its connection pool holds `pool_size` connections: one a worker finds the pool full for is
    closed after its request, and every new one costs a TLS handshake.
    """
    where = f"--kubeconfig {kubeconfig}" if kubeconfig else "in-cluster configuration"
    if kubeconfig and not os.path.exists(kubeconfig):
        print(f"ramen-operator: {where}: no such file", file=sys.stderr)
        return None
    cfg = k8s.Configuration()
    try:
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = pool_size
        return k8s.ApiClient(cfg)
    except (k8s_config.ConfigException, OSError, ValueError, TypeError, AttributeError, KeyError,
            yaml.YAMLError) as e:
        # The client library reports a bad file in many ways; all mean the same to the person starting us.
        print(f"ramen-operator: {where} cannot be used: {type(e).__name__}: {e}", file=sys.stderr)
    return None


if __name__ == "__main__":
    sys.exit(main())
