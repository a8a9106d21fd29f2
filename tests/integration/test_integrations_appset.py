"""The ApplicationSet plugin generator and `kubectl wait` against the real east and west API servers.

The plugin runs as its command line does in a pod (a subprocess on a loopback port) and reads
DRControls whose status the tests write through the /status subresource. The DRControls name a
DRPolicy that does not exist: an operator that happens to watch these clusters stalls them, and a
stalled DRControl keeps its ReadyForApplication as it was, so the tests stay in control of it.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.crdinstall import OUR_CRDS, install_crds
from e2e.localenv import argocd, build
from e2e.localenv.clients import Cluster
from reconciler.api.common import GROUP, VERSION

pytestmark = pytest.mark.realenv

TOKEN = secrets.token_hex(16)
NOW = "2026-11-25T12:00:00Z"


@dataclass
class Plugin:
    url: str
    proc: subprocess.Popen[str]

    def ask(self, namespace: str, drcontrol: str, token: str | None = TOKEN, body: bytes | None = None,
            ) -> tuple[int, dict[str, Any]]:
        data = body if body is not None else json.dumps(
            {"applicationSetName": "my-app", "input": {"parameters": {"namespace": namespace,
                                                                       "drcontrol": drcontrol}}}).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/getparams.execute", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def clusters(self, namespace: str, drcontrol: str) -> list[str]:
        status, doc = self.ask(namespace, drcontrol)
        assert status == 200, doc
        return [p["cluster"] for p in doc["output"]["parameters"]]


def start_plugin(tmp: Path, clusters: dict[str, Path], extra: tuple[str, ...] = ()) -> Plugin:
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    args = [sys.executable, "-m", "reconciler.integrations.appset_plugin", "--listen", "127.0.0.1:0",
            "--token-file", str(token_file), "--api-timeout", "3", "--log-level", "DEBUG"]
    for name, kubeconfig in clusters.items():
        args += ["--cluster", f"{name}={kubeconfig}"]
    args += extra
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the first log line names the bound address
    m = re.search(r"on (127\.0\.0\.1):(\d+)", line)
    assert m, f"plugin did not start: {line}"
    return Plugin(f"http://{m[1]}:{m[2]}", proc)


def stop_plugin(p: Plugin) -> str:
    p.proc.terminate()
    _, err = p.proc.communicate(timeout=10)
    return err


@pytest.fixture(scope="module")
def crds(east: Cluster, west: Cluster) -> None:
    for c in (east, west):
        install_crds(c.api, OUR_CRDS)


@pytest.fixture(scope="module")
def plugin(crds: None, east: Cluster, west: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    p = start_plugin(tmp_path_factory.mktemp("plugin"), {"east": east.kubeconfig, "west": west.kubeconfig})
    yield p
    log = stop_plugin(p)
    assert TOKEN not in log, "the token must never be logged"
    assert p.proc.returncode == 0, log


def create_drc(c: Cluster, namespace: str, name: str) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DRControl", "metadata": {"name": name},
            "spec": {"drPolicyRef": {"name": f"absent-{secrets.token_hex(4)}"}, "preferredCluster": "east",
                     "vrgSpec": {"replicationType": "async", "pvcSelector": {"matchLabels": {"app": name}},
                                 "s3Profiles": ["s3-profile-shared"]}}}
    c.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "drcontrols", body)


def set_ready(c: Cluster, namespace: str, name: str, ready: bool, generation: int, primary: str) -> None:
    conds = [{"type": "ReadyForApplication", "status": "True" if ready else "False",
              "reason": "DataReady" if ready else "NotPrimary", "message": "set by the test",
              "lastTransitionTime": NOW}]
    c.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "drcontrols", name,
        {"status": {"observedGeneration": 1, "generation": generation, "currentPrimary": primary,
                    "conditions": conds}})


def test_token_is_required(plugin: Plugin, namespace: str) -> None:
    for token in (None, "wrong-token", TOKEN[:-1]):
        status, doc = plugin.ask(namespace, "app-dr", token=token)
        assert status == 401 and "token" in doc["message"]


def test_names_exactly_the_ready_cluster_and_follows_flips(plugin: Plugin, namespace: str, east: Cluster,
                                                             west: Cluster) -> None:
    for c in (east, west):
        create_drc(c, namespace, "app-dr")
    set_ready(east, namespace, "app-dr", True, 1, "east")
    set_ready(west, namespace, "app-dr", False, 1, "east")
    status, doc = plugin.ask(namespace, "app-dr")
    assert status == 200
    assert doc["output"]["parameters"] == [{
        "cluster": "east", "namespace": namespace, "drcontrol": "app-dr", "currentPrimary": "east",
        "generation": 1, "observedGeneration": 1, "reason": "DataReady"}]

    # Relocate: the old Primary lets go first; in between the application may run nowhere.
    set_ready(east, namespace, "app-dr", False, 1, "east")
    assert plugin.clusters(namespace, "app-dr") == []
    set_ready(west, namespace, "app-dr", True, 2, "west")
    assert plugin.clusters(namespace, "app-dr") == ["west"]

    # A stale Primary that still claims readiness loses to the higher dr-state generation.
    set_ready(east, namespace, "app-dr", True, 1, "east")
    assert plugin.clusters(namespace, "app-dr") == ["west"]


def test_unknown_drcontrol_is_404(plugin: Plugin, namespace: str) -> None:
    status, doc = plugin.ask(namespace, "no-such-drc")
    assert status == 404 and f"{namespace}/no-such-drc" in doc["message"]


def test_present_on_one_cluster_only_is_not_ready_not_404(plugin: Plugin, namespace: str, west: Cluster) -> None:
    create_drc(west, namespace, "half")
    assert plugin.clusters(namespace, "half") == []


def test_malformed_bodies_are_400(plugin: Plugin, namespace: str) -> None:
    for body in (b"{", b"[]", b'{"input": {"parameters": {"namespace": "x"}}}',
                 json.dumps({"input": {"parameters": {"namespace": "UPPER", "drcontrol": "a"}}}).encode()):
        status, doc = plugin.ask(namespace, "x", body=body)
        assert status == 400 and doc["message"], body


def test_unreachable_cluster_is_503_unless_another_is_ready(crds: None, east: Cluster, namespace: str,
                                                            tmp_path: Path) -> None:
    # "west" here is an API server that is not listening: every read fails to connect.
    dead = yaml.safe_load(east.kubeconfig.read_text())
    for entry in dead["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"
    dead_path = tmp_path / "dead.kubeconfig"
    dead_path.write_text(yaml.safe_dump(dead))
    p = start_plugin(tmp_path, {"east": east.kubeconfig, "west": dead_path})
    try:
        create_drc(east, namespace, "app-dr")
        set_ready(east, namespace, "app-dr", True, 3, "east")
        assert p.clusters(namespace, "app-dr") == ["east"]
        set_ready(east, namespace, "app-dr", False, 3, "east")
        status, doc = p.ask(namespace, "app-dr")
        assert status == 503 and "west" in doc["message"] and "cannot reach" in doc["message"]
    finally:
        log = stop_plugin(p)
    assert TOKEN not in log


def test_kubectl_wait_for_ready_for_application(crds: None, east: Cluster, namespace: str) -> None:
    kubectl = [str(build.binaries().kubectl), "--kubeconfig", str(east.kubeconfig)]
    create_drc(east, namespace, "app-dr")
    set_ready(east, namespace, "app-dr", False, 1, "west")
    wait = [*kubectl, "wait", "--for=condition=ReadyForApplication", "drc/app-dr", "-n", namespace]
    r = subprocess.run([*wait, "--timeout=2s"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "timed out" in r.stderr
    # Started before the flip: kubectl watches and returns once the condition turns True.
    proc = subprocess.Popen([*wait, "--timeout=30s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        set_ready(east, namespace, "app-dr", True, 2, "east")
        out, err = proc.communicate(timeout=40)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "condition met" in out


def test_a_readiness_change_refreshes_the_applicationsets_that_name_the_drcontrol(
        crds: None, namespace: str, east: Cluster, west: Cluster, tmp_path: Path) -> None:
    """Argo CD's real ApplicationSet CRD on east (standing in for Argo CD's cluster): a flip of
    ReadyForApplication annotates, within seconds, the ApplicationSet that asks about it, and only it."""
    argocd.install(east.kubeconfig)
    for c in (east, west):
        create_drc(c, namespace, "app-dr")
    set_ready(east, namespace, "app-dr", True, 1, "east")

    def appset(name: str, drcontrol: str) -> dict[str, Any]:
        return {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "metadata": {"name": name},
                "spec": {"goTemplate": True, "generators": [{"plugin": {
                    "configMapRef": {"name": "ramen-p2p-appset-plugin"},
                    "input": {"parameters": {"namespace": namespace, "drcontrol": drcontrol}},
                    "requeueAfterSeconds": 1800}}],
                    "template": {"metadata": {"name": "x-{{.cluster}}"},
                                 "spec": {"project": "default", "destination": {"name": "{{.cluster}}"},
                                          "source": {"repoURL": "https://example.invalid/x.git", "path": "."}}}}}

    for name, drc in (("mine", "app-dr"), ("other", "other-dr")):
        east.custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "applicationsets",
                                                    appset(name, drc))

    def refresh_asked(name: str) -> bool:
        obj = east.custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "applicationsets", name)
        return (obj["metadata"].get("annotations") or {}).get("argocd.argoproj.io/application-set-refresh") == "true"

    p = start_plugin(tmp_path, {"east": east.kubeconfig, "west": west.kubeconfig},
                     ("--argocd-kubeconfig", str(east.kubeconfig), "--argocd-namespace", namespace))
    try:
        time.sleep(2)  # the watches list first; what they see then is no transition
        assert not refresh_asked("mine")
        t0 = time.monotonic()
        set_ready(east, namespace, "app-dr", False, 1, "east")
        set_ready(west, namespace, "app-dr", True, 2, "west")
        while not refresh_asked("mine"):
            assert time.monotonic() - t0 < 15, "no refresh asked within 15 s of the flip"
            time.sleep(0.1)
        print(f"refresh asked {time.monotonic() - t0:.2f}s after the flip")
        assert not refresh_asked("other"), "an ApplicationSet about another DRControl was refreshed"
    finally:
        log = stop_plugin(p)
    assert TOKEN not in log
    assert "refresh requested of ApplicationSet mine" in log
