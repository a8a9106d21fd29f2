"""Argo CD ApplicationSet plugin generator: deploy an application only where its DRControl allows.

Argo CD's plugin generator POSTs `{"applicationSetName": ..., "input": {"parameters": {...}}}` to
`<baseUrl>/api/v1/getparams.execute` with `Authorization: Bearer <token>` and expects
`{"output": {"parameters": [...]}}`, one parameter set per Application to render. Given
`input.parameters.namespace` and `input.parameters.drcontrol`, this service reads that DRControl on
every configured cluster and returns one parameter set for the cluster where ReadyForApplication
is True (see `readiness` for how disagreements and unreadable clusters are settled).

    python -m reconciler.integrations.appset_plugin --listen 0.0.0.0:4355 \
        --token-file /var/run/argo/token --cluster east=/kube/east --cluster west=/kube/west \
        --argocd-kubeconfig in-cluster

With `--argocd-kubeconfig` the plugin also watches the DRControls and, when one's
ReadyForApplication changes, asks Argo CD to refresh the ApplicationSets that name it (see
`refresher`): Applications follow a failover or relocate within seconds, not at the next poll.

Status codes: 200 with the list (possibly empty); 400 for a malformed request; 401 without the
right token; 404 when the DRControl exists on no cluster (a typo must not look like "deploy
nowhere"); 503 when the answer depends on a cluster that cannot be read. Every error body is JSON
with a `message`, which Argo CD shows in the ApplicationSet's conditions.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.api.common import GROUP, VERSION
from reconciler.httpbounds import MAX_CONNECTIONS, REQUEST_DEADLINE, BoundedHandler, BoundedHTTPServer
from reconciler.integrations.clusters import (
    PLURAL,
    DRControlReader,
    KubeReader,
    kube_reader,
    parse_cluster_arg,
    read_all,
)
from reconciler.integrations.readiness import decide
from reconciler.integrations.refresher import KubeApplications, KubeAppSets, Refresher, kube_watch
from reconciler.integrations.stopack import Acknowledger, Annotator

log = logging.getLogger("ramen_p2p.appset_plugin")

PATH = "/api/v1/getparams.execute"
MAX_BODY = 64 * 1024  # Argo CD sends a few hundred bytes; anything near this is not Argo CD.
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class BadRequest(ValueError):
    pass


class TokenFile:
    """The shared token, re-read when the file changes so a rotated Secret needs no restart."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._token = b""
        self._load()

    def _load(self) -> None:
        mtime = self._path.stat().st_mtime
        if mtime == self._mtime:
            return
        token = self._path.read_bytes().strip()
        if not token:
            raise ValueError(f"token file {self._path} is empty")
        self._token, self._mtime = token, mtime

    def matches(self, authorization: str | None) -> bool:
        with self._lock:
            try:
                self._load()
            except (OSError, ValueError):
                log.warning("token file %s unreadable; keeping the previous token", self._path)
        presented = b""
        if authorization is not None and authorization.startswith("Bearer "):
            presented = authorization[len("Bearer "):].strip().encode("utf-8", "replace")
        # compare_digest takes time independent of where the values differ.
        return hmac.compare_digest(presented, self._token) and bool(presented)


@dataclass(frozen=True)
class Request:
    appset: str
    namespace: str
    drcontrol: str


def parse_request(body: bytes) -> Request:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    appset = doc.get("applicationSetName", "")
    if not isinstance(appset, str):
        raise BadRequest("applicationSetName must be a string")
    inp = doc.get("input")
    params = inp.get("parameters") if isinstance(inp, dict) else None
    if not isinstance(params, dict):
        raise BadRequest("input.parameters must be an object with namespace and drcontrol")
    ns, name = params.get("namespace"), params.get("drcontrol")
    if not isinstance(ns, str) or len(ns) > 63 or not NAMESPACE_RE.match(ns):
        raise BadRequest("input.parameters.namespace must be a namespace name (RFC 1123 label)")
    if not isinstance(name, str) or len(name) > 253 or not NAME_RE.match(name):
        raise BadRequest("input.parameters.drcontrol must be a DRControl name (RFC 1123 subdomain)")
    return Request(appset, ns, name)


class Generator:
    """Turns a request body into (HTTP status, JSON document); no HTTP concerns here."""

    def __init__(self, readers: Mapping[str, DRControlReader], workers: int = 8) -> None:
        if not readers:
            raise ValueError("at least one cluster is needed")
        self.readers = dict(readers)
        # Told (namespace, name, clusters) after each answer: the stop acknowledger's grace starts there.
        self.on_answer: Callable[[str, str, list[str]], None] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                           thread_name_prefix="drc-read")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def generate(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            req = parse_request(body)
        except BadRequest as e:
            return 400, error("BadRequest", str(e))
        views = read_all(self.readers, req.namespace, req.drcontrol, self._pool)
        d = decide(views)
        key = f"{req.namespace}/{req.drcontrol}"
        if d.problem is not None:
            return 503, error("Unknown", f"DRControl {key}: {d.problem}")
        if d.not_found:
            return 404, error("NotFound", f"DRControl {key} not found on any cluster "
                                          f"({', '.join(self.readers)})")
        if d.unreadable:
            log.warning("DRControl %s: answered without clusters %s (unreadable)", key, d.unreadable)
        if self.on_answer is not None:
            self.on_answer(req.namespace, req.drcontrol, [r.cluster for r in d.ready])
        return 200, {"output": {"parameters": [r.parameters(req.namespace, req.drcontrol) for r in d.ready]}}


def error(code: str, message: str) -> dict[str, Any]:
    # Argo CD surfaces `message` (or `error`) of a non-2xx JSON body in the ApplicationSet status.
    return {"error": code, "message": message}


class PluginServer(BoundedHTTPServer):
    # Without this, a restart within TIME_WAIT would fail to bind the port.
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], generator: Generator, token: TokenFile, *,
                 max_connections: int = MAX_CONNECTIONS, request_deadline: float = REQUEST_DEADLINE) -> None:
        # The whole request (not each read) has request_deadline seconds: a slow drip is cut off.
        super().__init__(address, Handler, max_connections=max_connections, request_deadline=request_deadline)
        self.generator = generator
        self.token = token


class Handler(BoundedHandler):
    server: PluginServer
    protocol_version = "HTTP/1.1"
    server_version = "ramen-p2p-appset-plugin"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only; headers (and with them the token) are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, doc: Mapping[str, Any], headers: Sequence[tuple[str, str]] = ()) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            # Say so: a client that reuses the connection would otherwise fail its next request with EOF.
            self.send_header("Connection", "close")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path in ("/healthz", "/readyz"):
            self._send(200, {"status": "ok"})
        elif self.path == PATH:
            self._send(405, error("MethodNotAllowed", "use POST"), [("Allow", "POST")])
        else:
            self._send(404, error("NotFound", f"no such path {self.path}"))

    def do_POST(self) -> None:
        started = time.monotonic()
        if self.path != PATH:
            self.close_connection = True
            self._send(404, error("NotFound", f"no such path; the plugin serves POST {PATH}"))
            return
        # Authenticate before reading the body, so an unauthenticated client costs nothing.
        if not self.server.token.matches(self.headers.get("Authorization")):
            self.close_connection = True
            self._send(401, error("Unauthorized", "missing or wrong bearer token"),
                       [("WWW-Authenticate", 'Bearer realm="ramen-p2p"')])
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._send(411, error("LengthRequired", "Content-Length is required"))
            return
        if int(length) > MAX_BODY:
            self.close_connection = True
            self._send(413, error("TooLarge", f"request body over {MAX_BODY} bytes"))
            return
        body = self.rfile.read(int(length))
        status, doc = self.server.generator.generate(body)
        self._send(status, doc)
        n = len(doc.get("output", {}).get("parameters", [])) if status == 200 else 0
        log.info("getparams status=%d parameters=%d took=%.3fs %s", status, n, time.monotonic() - started,
                 doc.get("message", ""))


def _annotator(readers: Mapping[str, KubeReader]) -> Annotator:
    def annotate(cluster: str, namespace: str, name: str, key: str, value: str) -> None:
        readers[cluster].api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": {key: value}}},
            _request_timeout=readers[cluster].timeout)

    return annotate


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reconciler.integrations.appset_plugin",
                                description="Argo CD ApplicationSet plugin generator keyed on ReadyForApplication")
    p.add_argument("--listen", default="0.0.0.0:4355", help="HOST:PORT to serve on (default %(default)s)")
    p.add_argument("--token-file", required=True, type=Path,
                   help="file holding the bearer token Argo CD sends (mounted from a Secret)")
    p.add_argument("--cluster", action="append", default=[], metavar="NAME=KUBECONFIG",
                   help="a DR cluster and how to reach it (repeat; KUBECONFIG may be 'in-cluster'); "
                        "NAME should be the DRCluster name")
    p.add_argument("--api-timeout", type=float, default=5.0,
                   help="seconds to wait for each cluster's API server (default %(default)s)")
    p.add_argument("--argocd-kubeconfig", default=None, metavar="KUBECONFIG",
                   help="the cluster Argo CD runs on ('in-cluster' for the pod's ServiceAccount): refresh the "
                        "ApplicationSets that ask about a DRControl whenever its ReadyForApplication changes")
    p.add_argument("--argocd-namespace", default="argocd",
                   help="namespace of the ApplicationSets (default %(default)s)")
    p.add_argument("--plugin-configmap", default="ramen-p2p-appset-plugin",
                   help="the ConfigMap the ApplicationSets' plugin generators name (default %(default)s)")
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        host, port = parse_listen(args.listen)
        token = TokenFile(args.token_file)
        if not args.cluster:
            raise ValueError("at least one --cluster NAME=KUBECONFIG is needed")
        readers: dict[str, DRControlReader] = {}
        kube_readers = {}
        for arg in args.cluster:
            name, source = parse_cluster_arg(arg)
            readers[name] = kube_readers[name] = kube_reader(source, timeout=(min(3.0, args.api_timeout),
                                                                              args.api_timeout))
        refresher, acks = None, None
        if args.argocd_kubeconfig:
            argocd = kube_reader(args.argocd_kubeconfig).api
            appsets = KubeAppSets(argocd, args.argocd_namespace)
            acks = Acknowledger(appsets, KubeApplications(argocd, args.argocd_namespace),
                                _annotator(kube_readers), args.plugin_configmap)
            refresher = Refresher({n: kube_watch(r.api) for n, r in kube_readers.items()}, appsets,
                                  args.plugin_configmap, observers=[acks.observe])
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    generator = Generator(readers)
    if acks is not None:
        generator.on_answer = acks.answered
    server = PluginServer((host, port), generator, token)
    # SIGTERM (pod shutdown) stops the loop the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    log.info("serving %s on %s:%d for clusters %s", PATH, *server.server_address[:2], ", ".join(readers))
    if refresher is not None and acks is not None:
        refresher.start()
        acks.start()
        log.info("refreshing ApplicationSets in %s that name ConfigMap %s when ReadyForApplication changes",
                 args.argocd_namespace, args.plugin_configmap)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if refresher is not None and acks is not None:
            refresher.stop()
            acks.stop()
        server.server_close()
        generator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
