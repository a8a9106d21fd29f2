"""The plugin generator's HTTP surface, served for real on a loopback port with in-memory clusters."""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.integrations.appset_plugin import MAX_BODY, PATH, Generator, PluginServer, TokenFile, main

TOKEN = "unit-test-token-0123456789"


class Clusters:
    """DRControls by cluster; a cluster mapped to an exception fails every read with it."""

    def __init__(self) -> None:
        self.objs: dict[str, dict[str, Any] | Exception] = {"east": {}, "west": {}}

    def reader(self, cluster: str) -> Any:
        def read(namespace: str, name: str) -> Mapping[str, Any] | None:
            entry = self.objs[cluster]
            if isinstance(entry, Exception):
                raise entry
            return entry.get(f"{namespace}/{name}")
        return read

    def put(self, cluster: str, ready: bool, generation: int = 1) -> None:
        obj = {"status": {"generation": generation, "currentPrimary": cluster, "conditions": [
            {"type": "ReadyForApplication", "status": "True" if ready else "False"}]}}
        entry = self.objs[cluster]
        assert isinstance(entry, dict)
        entry["ns/app-dr"] = obj


@pytest.fixture
def clusters() -> Clusters:
    return Clusters()


@pytest.fixture
def server(tmp_path: Path, clusters: Clusters) -> Iterator[PluginServer]:
    tf = tmp_path / "token"
    tf.write_text(TOKEN)
    gen = Generator({c: clusters.reader(c) for c in ("east", "west")})
    srv = PluginServer(("127.0.0.1", 0), gen, TokenFile(tf))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    gen.close()


Reply = tuple[int, dict[str, Any], http.client.HTTPResponse]


def connect(srv: PluginServer) -> http.client.HTTPConnection:
    host, port = srv.server_address[:2]
    return http.client.HTTPConnection(str(host), int(port), timeout=10)


def call(srv: PluginServer, body: bytes | None = None, token: str | None = TOKEN, method: str = "POST",
         path: str = PATH, headers: dict[str, str] | None = None) -> Reply:
    conn = connect(srv)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    conn.close()
    return resp.status, doc, resp


def ask(ns: str = "ns", name: str = "app-dr") -> bytes:
    params = {"namespace": ns, "drcontrol": name}
    return json.dumps({"applicationSetName": "a", "input": {"parameters": params}}).encode()


def test_answers_with_the_ready_cluster(server: PluginServer, clusters: Clusters) -> None:
    clusters.put("east", True, 2)
    clusters.put("west", False, 2)
    status, doc, resp = call(server, ask())
    assert status == 200 and resp.getheader("Content-Type") == "application/json"
    assert [p["cluster"] for p in doc["output"]["parameters"]] == ["east"]


def test_auth_is_checked_before_anything_else(server: PluginServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for token in (None, "wrong", TOKEN + "x", ""):
        status, doc, resp = call(server, ask(), token=token)
        assert status == 401 and doc["message"] and resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    # Unauthenticated requests never reach the body checks.
    assert call(server, b"x" * (MAX_BODY + 1), token="wrong")[0] == 401
    status, _, _ = call(server, ask())
    assert status == 404  # authenticated; the DRControl exists nowhere
    assert TOKEN not in caplog.text


def test_unknown_drcontrol_is_404_with_a_message(server: PluginServer) -> None:
    status, doc, _ = call(server, ask(name="nope"))
    assert status == 404 and "ns/nope" in doc["message"] and "east" in doc["message"]


def test_bad_requests(server: PluginServer) -> None:
    assert call(server, b"{not json")[0] == 400
    status, doc, _ = call(server, b'{"input": {}}')
    assert status == 400 and "input.parameters" in doc["message"]
    assert call(server, b"x" * (MAX_BODY + 1))[0] == 413
    assert call(server, ask(), path="/api/v1/other")[0] == 404
    assert call(server, None, method="GET")[0] == 405


def test_missing_content_length_is_411(server: PluginServer) -> None:
    conn = connect(server)
    conn.putrequest("POST", PATH)
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 411 and json.loads(resp.read())["message"]
    conn.close()


def test_unreadable_cluster_is_503_unless_another_is_ready(server: PluginServer, clusters: Clusters) -> None:
    clusters.put("west", False)
    clusters.objs["east"] = TimeoutError("read timed out")
    status, doc, _ = call(server, ask())
    assert status == 503 and "east" in doc["message"] and "timed out" in doc["message"]
    clusters.put("west", True, 9)
    status, doc, _ = call(server, ask())
    assert status == 200 and [p["cluster"] for p in doc["output"]["parameters"]] == ["west"]


def test_healthz_needs_no_token(server: PluginServer) -> None:
    assert call(server, None, token=None, method="GET", path="/healthz")[0] == 200


def test_cli_refuses_bad_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tf = tmp_path / "token"
    tf.write_text(TOKEN)
    assert main(["--token-file", str(tf)]) == 2
    assert main(["--token-file", str(tf), "--cluster", "east"]) == 2
    assert main(["--token-file", str(tf), "--cluster", f"east={tmp_path / 'missing'}"]) == 2
    assert main(["--token-file", str(tmp_path / "none"), "--cluster", f"east={tf}"]) == 2
    assert main(["--listen", "nope", "--token-file", str(tf), "--cluster", f"east={tf}"]) == 2
    assert TOKEN not in capsys.readouterr().err
