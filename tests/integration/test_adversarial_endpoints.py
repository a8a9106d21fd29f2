"""Adversarial clients of every listener, hostile peer credentials and bad command lines, on the real clusters.

The probe/metrics server is the operator's own `serve_http` with a Manager and a TokenReview
authorizer on the real east API server; the ApplicationSet plugin reads the real clusters. Each
case asserts an answer with a reason (or a bounded cut-off) and that the server still serves
afterwards.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config as k8s_config

from e2e import harness
from e2e.localenv.clients import Cluster
from reconciler.config import CONFIGMAP_NAME, P2P_CONFIGMAP_NAME, parse_config
from reconciler.controllers.nudge import UnsafeKubeconfig, check_api_server, load_peer_kubeconfig
from reconciler.integrations.appset_plugin import PATH, Generator, PluginServer, TokenFile
from reconciler.integrations.clusters import kube_reader
from reconciler.kube import CONFIGMAPS, KubeClient
from reconciler.manager import Manager, Options, serve_http
from reconciler.metrics_auth import KubeAuthorizer
from reconciler.notify.webhook import WebhookNotifier

pytestmark = pytest.mark.realenv

DEADLINE = 1.0  # the request deadline the servers under test get, so cut-offs are quick to see
TOKEN = secrets.token_hex(16)


# -- servers under test ----------------------------------------------------------
@pytest.fixture(scope="module")
def probe_server(clusters: dict[str, Cluster], s3_settings: dict[str, str]) -> Iterator[tuple[str, int]]:
    east = clusters["east"]
    harness.configure_cluster(east, s3_settings)
    api = k8s_config.new_client_from_config(config_file=str(east.kubeconfig))
    kube = KubeClient(api)
    config = parse_config(kube.get(CONFIGMAPS, CONFIGMAP_NAME, harness.OPERATOR_NS),
                          kube.get(CONFIGMAPS, P2P_CONFIGMAP_NAME, harness.OPERATOR_NS), harness.OPERATOR_NS)
    manager = Manager(api, Options(cluster_name="east"), config)
    srv = serve_http("127.0.0.1:0", manager, KubeAuthorizer(manager.client, review_burst=5),
                     request_deadline=DEADLINE, max_connections=4)
    yield str(srv.server_address[0]), int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def plugin_server(clusters: dict[str, Cluster], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[str, int]]:
    token_file = tmp_path_factory.mktemp("plugin") / "token"
    token_file.write_text(TOKEN)
    gen = Generator({name: kube_reader(str(c.kubeconfig)) for name, c in clusters.items()})
    srv = PluginServer(("127.0.0.1", 0), gen, TokenFile(token_file), request_deadline=DEADLINE, max_connections=4)
    import threading

    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield str(srv.server_address[0]), int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()
    gen.close()


def _get(addr: tuple[str, int], path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*addr, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed `sock` (recv returns b'' or an answer then EOF)."""
    t0 = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for more than {seconds}s")
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def _drip(addr: tuple[str, int], payload: bytes, every: float, for_seconds: float) -> float:
    """Send `payload` one byte at a time; seconds until the server cut the connection."""
    s = socket.create_connection(addr, timeout=5)
    t0 = time.monotonic()
    try:
        for b in payload:
            if time.monotonic() - t0 > for_seconds:
                break
            try:
                s.sendall(bytes([b]))
            except OSError:
                return time.monotonic() - t0
            time.sleep(every)
        return time.monotonic() - t0 + _closed_within(s, for_seconds)
    finally:
        s.close()


ENDPOINTS = ["probe_server", "plugin_server"]


# -- slow and idle clients -----------------------------------------------------------
@pytest.mark.parametrize("server", ENDPOINTS)
def test_header_dripped_one_byte_at_a_time_is_cut_off_at_the_request_deadline(
        server: str, request: pytest.FixtureRequest) -> None:
    addr = request.getfixturevalue(server)
    took = _drip(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200, every=0.2, for_seconds=8)
    assert took < DEADLINE + 2.5, f"connection held {took:.1f}s"
    assert _get(addr, "/healthz")[0] == 200  # still serving


@pytest.mark.parametrize("server", ENDPOINTS)
def test_idle_connection_is_closed(server: str, request: pytest.FixtureRequest) -> None:
    addr = request.getfixturevalue(server)
    s = socket.create_connection(addr, timeout=5)
    try:
        assert _closed_within(s, DEADLINE + 3) < DEADLINE + 2
    finally:
        s.close()


def test_plugin_body_dripped_slowly_is_cut_off(plugin_server: tuple[str, int]) -> None:
    body = json.dumps({"applicationSetName": "a", "input": {"parameters": {"namespace": "n", "drcontrol": "d"}}})
    head = (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s = socket.create_connection(plugin_server, timeout=5)
    try:
        s.sendall(head)
        t0 = time.monotonic()
        for b in body.encode()[:40]:
            try:
                s.sendall(bytes([b]))
            except OSError:
                break
            time.sleep(0.2)
        took = time.monotonic() - t0 + _closed_within(s, 8)
    finally:
        s.close()
    assert took < DEADLINE + 2.5


@pytest.mark.parametrize("server", ENDPOINTS)
def test_connections_over_the_cap_get_503_busy_and_the_server_recovers(
        server: str, request: pytest.FixtureRequest) -> None:
    addr = request.getfixturevalue(server)
    held = [socket.create_connection(addr, timeout=5) for _ in range(4)]
    try:
        time.sleep(0.2)
        extra = socket.create_connection(addr, timeout=5)
        try:
            extra.settimeout(5)
            answer = extra.recv(4096)
        finally:
            extra.close()
        assert answer.startswith(b"HTTP/1.1 503") and b"too many open connections" in answer
    finally:
        for s in held:
            s.close()
    time.sleep(DEADLINE + 0.5)
    assert _get(addr, "/healthz")[0] == 200


# -- the probe/metrics server ------------------------------------------------------------
@pytest.mark.parametrize("headers, status, reason", [
    ({}, 401, "bearer token is required"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "bearer token is required"),
    ({"Authorization": "Bearer "}, 401, "bearer token is required"),
    ({"Authorization": "Bearer not-a-real-token"}, 401, "not valid"),
])
def test_metrics_refuses_missing_and_bad_tokens_with_a_reason(probe_server: tuple[str, int], headers: dict[str, str],
                                                              status: int, reason: str) -> None:
    code, _, body = _get(probe_server, "/metrics", headers)
    assert code == status and reason in json.loads(body)["error"]


def test_distinct_bad_tokens_are_rate_limited_not_each_sent_to_the_api_server(
        probe_server: tuple[str, int]) -> None:
    codes = [_get(probe_server, "/metrics", {"Authorization": f"Bearer bad-{i}-{secrets.token_hex(4)}"})[0]
             for i in range(30)]
    assert 429 in codes, codes
    assert codes.count(401) <= 10  # the burst (5) plus what refilled meanwhile
    assert _get(probe_server, "/healthz")[0] == 200


@pytest.mark.parametrize("path, status", [("/healthz", 200), ("/nope", 404), ("/" + "a" * 5000, 404)])
def test_probe_paths_answer(probe_server: tuple[str, int], path: str, status: int) -> None:
    assert _get(probe_server, path)[0] == status


# -- the ApplicationSet plugin -----------------------------------------------------------
def _post(addr: tuple[str, int], body: bytes, token: str | None, conn: http.client.HTTPConnection | None = None,
          ) -> tuple[int, dict[str, str], dict[str, Any]]:
    c = conn or http.client.HTTPConnection(*addr, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    c.request("POST", PATH, body=body, headers=headers)
    r = c.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(r.read() or b"{}")


def test_plugin_401_says_connection_close_and_the_next_request_succeeds(plugin_server: tuple[str, int]) -> None:
    body = json.dumps({"applicationSetName": "a",
                       "input": {"parameters": {"namespace": "nowhere", "drcontrol": "nothing"}}}).encode()
    status, headers, doc = _post(plugin_server, body, "wrong")
    assert status == 401 and headers.get("connection") == "close" and doc["error"] == "Unauthorized"
    for _ in range(5):  # a client that honours the header never reuses the closed connection
        status, _, doc = _post(plugin_server, body, TOKEN)
        assert status == 404 and "not found on any cluster" in doc["message"]


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "BadRequest"),
    (b"[]", 400, "BadRequest"),
    (json.dumps({"input": {"parameters": {"namespace": "UPPER", "drcontrol": "x"}}}).encode(), 400, "BadRequest"),
    (json.dumps({"input": {"parameters": {"namespace": "n" * 64, "drcontrol": "x"}}}).encode(), 400, "BadRequest"),
    (json.dumps({"input": {"parameters": {"namespace": "ns", "drcontrol": "../x"}}}).encode(), 400, "BadRequest"),
    (b"x" * (65 * 1024), 413, "TooLarge"),
])
def test_plugin_malformed_requests_get_a_reason(plugin_server: tuple[str, int], body: bytes, status: int,
                                                code: str) -> None:
    got, _, doc = _post(plugin_server, body, TOKEN)
    assert got == status and doc["error"] == code and doc["message"]


# -- peer credentials (nudges) -----------------------------------------------------------
def _kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> bytes:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://peer.example:6443"}}],
        "users": [{"name": "u", "user": user}],
    }).encode()


@pytest.mark.parametrize("data, refused", [
    (_kubeconfig({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/touch",
                           "args": ["/tmp/ramen-p2p-pwned"]}}), "users[].user.exec"),
    (_kubeconfig({"auth-provider": {"name": "gcp"}}), "users[].user.auth-provider"),
    (_kubeconfig({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}), "tokenFile"),
    (_kubeconfig({"client-certificate": "/etc/ssl/private/x.crt", "client-key": "/etc/ssl/private/x.key"}),
     "client-certificate"),
    (_kubeconfig({"token": "t"}, {"server": "https://p:6443", "certificate-authority": "/etc/passwd"}),
     "certificate-authority"),
    (b"{{{ not yaml", "not YAML"),
    (b"- a list", "not a mapping"),
    (yaml.safe_dump({"current-context": "gone", "contexts": []}).encode(), "no context 'gone'"),
])
def test_peer_kubeconfig_that_would_run_commands_or_read_local_files_is_refused(data: bytes, refused: str) -> None:
    with pytest.raises(UnsafeKubeconfig, match=refused.replace("[", r"\[").replace("]", r"\]")):
        load_peer_kubeconfig(data, "Secret ramen-system/peer")
    assert not Path("/tmp/ramen-p2p-pwned").exists()


@pytest.mark.parametrize("server, api_server, refused", [
    ("https://peer.example:6443", "https://mallory.example:6443", "refusing to send its credentials elsewhere"),
    ("http://peer.example:6443", "", "must be an https:// URL"),
])
def test_peer_endpoint_cannot_redirect_the_credentials(server: str, api_server: str, refused: str) -> None:
    cfg = load_peer_kubeconfig(_kubeconfig({"token": "t"}, {"server": server}), "Secret s")
    with pytest.raises(UnsafeKubeconfig, match=refused):
        check_api_server(cfg, api_server, "Secret s")


def test_inlined_peer_kubeconfig_of_the_real_west_cluster_is_accepted(west: Cluster) -> None:
    cfg = load_peer_kubeconfig(json.dumps(harness.inline_kubeconfig(west.kubeconfig)).encode(), "Secret s")
    server = cfg["clusters"][0]["cluster"]["server"]
    check_api_server(cfg, server, "Secret s")
    api = k8s_config.new_client_from_config_dict(cfg)
    assert KubeClient(api).list(CONFIGMAPS, "default", limit=1) is not None


# -- secrets in logs -----------------------------------------------------------------
def test_webhook_url_path_and_query_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    secret_path = "/services/T000/B000/" + secrets.token_hex(12)
    url = f"http://user:pw@127.0.0.1:9{secret_path}?token=abc"  # port 9 (discard): nothing answers
    n = WebhookNotifier(url, None, "east", timeout=0.5, max_attempts=1)
    caplog.set_level(logging.DEBUG)
    n.start()
    n.notify({"metadata": {"namespace": "ns", "name": "app"}, "status": {}}, True)
    time.sleep(2.0)
    n.stop(2.0)
    text = caplog.text
    assert "127.0.0.1" in text
    for leak in (secret_path, "token=abc", "pw@"):
        assert leak not in text


# -- command lines ---------------------------------------------------------------------
def _operator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler.operator", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("contents, message", [
    (None, "no such file"),
    ("garbage: [", "cannot be used"),
    ("apiVersion: v1\nkind: Config\nclusters: 5\n", "cannot be used"),
    ("", "cannot be used"),
])
def test_unusable_kubeconfig_exits_2_with_a_message_and_no_traceback(tmp_path: Path, contents: str | None,
                                                                     message: str) -> None:
    path = tmp_path / "kubeconfig"
    if contents is not None:
        path.write_text(contents)
    r = _operator("--cluster-name", "east", "--kubeconfig", str(path))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["East", "a/b", "x" * 64, "-east"])
def test_cluster_name_that_is_not_a_label_exits_2(name: str) -> None:
    r = _operator(f"--cluster-name={name}", "--kubeconfig", "/nonexistent")
    assert r.returncode == 2 and "DNS-1123 label" in r.stderr and "Traceback" not in r.stderr


def test_secret_values_are_not_in_a_kubeconfig_error(tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "users": [{"name": "u", "user": {
        "token": token}}], "clusters": 5}))
    r = _operator("--cluster-name", "east", "--kubeconfig", str(path))
    assert r.returncode == 2 and token not in r.stderr and token not in r.stdout
    assert base64.b64encode(token.encode()).decode() not in r.stderr
