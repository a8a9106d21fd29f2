"""A small JSON client over the `kubernetes` package's connection pool and auth.

It speaks plain dicts, streams watches, and counts every request by verb and
by origin (e.g. "informer", "reconcile") so tests and metrics can prove who
talks to the API server and how often.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import json
import logging
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client as k8s

from reconciler.kube.errors import ApiError, ConflictError, WatchGone
from reconciler.kube.resources import Obj, ResourceType, resource_version

log = logging.getLogger(__name__)

READ_VERBS = frozenset({"get", "list", "watch"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})

_origin: contextvars.ContextVar[str] = contextvars.ContextVar("kube_request_origin", default="other")


@contextlib.contextmanager
def request_origin(label: str) -> Iterator[None]:
    """Attribute the requests made inside the block (in this thread) to `label`."""
    token = _origin.set(label)
    try:
        yield
    finally:
        _origin.reset(token)


class RequestStats:
    """Thread-safe counts of requests sent, by (origin, verb)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, verb: str) -> None:
        with self._lock:
            self._counts[(_origin.get(), verb)] += 1

    def count(self, verbs: frozenset[str] | set[str] | None = None, origin: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (o, v), n in self._counts.items()
                if (verbs is None or v in verbs) and (origin is None or o == origin)
            )

    @property
    def writes(self) -> int:
        return self.count(WRITE_VERBS)

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


class WatchStream:
    """One open watch: iterate decoded events; `close()` from any thread ends the iteration."""

    def __init__(self, resp: urllib3.BaseHTTPResponse) -> None:
        self._resp = resp
        self._closed = False

    def __iter__(self) -> Iterator[Obj]:
        buf = b""
        try:
            for chunk in self._resp.stream(amt=64 * 1024, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError):
            if not self._closed:
                raise
        finally:
            self._resp.release_conn()

    def close(self) -> None:
        """Unblock a reader stuck in recv(): shutting the socket down wakes it, closing alone may not."""
        self._closed = True
        conn = getattr(self._resp, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._resp.close()


class KubeClient:
    """JSON over HTTP to one API server, reusing an `ApiClient`'s TLS setup and credentials."""

    def __init__(self, api_client: k8s.ApiClient, request_timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.host: str = api_client.configuration.host.rstrip("/")
        self.request_timeout = request_timeout
        self.stats = RequestStats()

    # -- transport ---------------------------------------------------------
    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers: dict[str, str] = dict(self.api_client.default_headers)
        headers["Accept"] = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        # Calls the configuration's refresh hook, so rotated service-account tokens are picked up.
        self.api_client.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    def _send(
        self,
        verb: str,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        url = self.host + path
        if query:
            url += "?" + urlencode(query)
        self.stats.record(verb)
        data = json.dumps(body).encode() if body is not None else None
        timeout = urllib3.Timeout(connect=min(10.0, self.request_timeout), read=read_timeout or self.request_timeout)
        pool = self.api_client.rest_client.pool_manager
        try:
            resp: urllib3.BaseHTTPResponse = pool.request(
                method,
                url,
                body=data,
                headers=self._headers(content_type if data is not None else None),
                preload_content=not stream,
                timeout=timeout,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, "ConnectionError", str(e)) from e
        if not 200 <= resp.status <= 299:
            err = ApiError.from_response(resp.status, resp.data)
            resp.release_conn()
            if err.gone:
                raise WatchGone(err.status, err.reason, err.message, err.body)
            if err.conflict:
                raise ConflictError(err.status, err.reason, err.message, err.body)
            raise err
        return resp

    def _json(self, verb: str, method: str, path: str, **kw: Any) -> Obj:
        resp = self._send(verb, method, path, **kw)
        out: Obj = json.loads(resp.data) if resp.data else {}
        return out

    # -- verbs -------------------------------------------------------------
    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        return self._json("get", "GET", rt.object_path(name, namespace))

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a list; `resource_version=None` asks for the latest (a consistent read from etcd)."""
        q: dict[str, str] = {}
        if label_selector:
            q["labelSelector"] = label_selector
        if limit:
            q["limit"] = str(limit)
        if continue_token:
            q["continue"] = continue_token
        if resource_version is not None:
            q["resourceVersion"] = resource_version
        return self._json("list", "GET", rt.collection_path(namespace), query=q)

    def watch(
        self,
        rt: ResourceType,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
    ) -> WatchStream:
        q = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true" if bookmarks else "false",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            q["labelSelector"] = label_selector
        resp = self._send(
            "watch", "GET", rt.collection_path(namespace), query=q, stream=True, read_timeout=timeout_seconds + 30
        )
        return WatchStream(resp)

    def create(self, rt: ResourceType, obj: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return self._json("create", "POST", rt.collection_path(ns), body=obj, content_type="application/json")

    def replace(self, rt: ResourceType, obj: Obj, subresource: str | None = None) -> Obj:
        """PUT the whole object; its metadata.resourceVersion makes it a compare-and-swap (409 on a race)."""
        meta = obj["metadata"]
        path = rt.object_path(meta["name"], meta.get("namespace"), subresource)
        return self._json("update", "PUT", path, body=obj, content_type="application/json")

    def json_patch(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None,
        ops: builtins.list[dict[str, Any]],
        subresource: str | None = None,
    ) -> Obj:
        path = rt.object_path(name, namespace, subresource)
        return self._json("patch", "PATCH", path, body=ops, content_type="application/json-patch+json")

    def merge_patch(
        self, rt: ResourceType, name: str, namespace: str | None, patch: Obj, subresource: str | None = None
    ) -> Obj:
        path = rt.object_path(name, namespace, subresource)
        return self._json("patch", "PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, rt: ResourceType, name: str, namespace: str | None = None) -> None:
        self._send("delete", "DELETE", rt.object_path(name, namespace))


def guarded_ops(live: Obj, ops: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
    """Prefix a JSON patch with a `test` of the live resourceVersion, making it compare-and-swap."""
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(live)}, *ops]
