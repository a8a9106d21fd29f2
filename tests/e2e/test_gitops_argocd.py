"""The real Argo CD ApplicationSet controller follows a relocate and a failover within seconds.

Argo CD's ApplicationSet controller (built from the argo-cd/v3 module, e2e/localenv/argocd.py)
runs against east, which plays the cluster Argo CD lives on, in the test's namespace. The
ApplicationSet asks our plugin generator, whose poll is set to 30 minutes: only the plugin's
refresh on each ReadyForApplication change can make the Applications follow within the test.
Argo CD's application controller is not run, so the template carries no resources finalizer
(nothing would remove it) and the tests assert on the Application objects.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv import argocd
from e2e.localenv.clients import Cluster
from e2e.localenv.procs import Component, free_port
from tests.e2e.conftest import DRPair

ARGO = ("argoproj.io", "v1alpha1")
PLUGIN_CM = "ramen-p2p-appset-plugin"


@pytest.fixture(scope="module")
def argo_crds(east: Cluster) -> None:
    for name in ("application-crd.yaml", "applicationset-crd.yaml", "appproject-crd.yaml"):
        argocd.install(east.kubeconfig, name)


def _argo_objects(token: str, plugin_url: str, clusters: dict[str, Cluster]) -> list[dict[str, Any]]:
    part_of = {"app.kubernetes.io/part-of": "argocd"}
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "labels": part_of}, "data": {}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-secret", "labels": part_of},
         "stringData": {"server.secretkey": secrets.token_hex(16)}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": PLUGIN_CM, "labels": part_of},
         "stringData": {"token": token}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": PLUGIN_CM, "labels": part_of},
         "data": {"baseUrl": plugin_url, "token": f"${PLUGIN_CM}:token", "requestTimeout": "20"}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": {"name": "default"},
         "spec": {"sourceRepos": ["*"], "destinations": [{"name": "*", "server": "*", "namespace": "*"}]}},
    ]
    for name, c in clusters.items():
        server = str(c.api.configuration.host)
        objs.append({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": f"cluster-{name}",
                                  "labels": {"argocd.argoproj.io/secret-type": "cluster", **part_of}},
                     "stringData": {"name": name, "server": server,
                                    "config": '{"tlsClientConfig": {"insecure": true}}'}})
    return objs


def _create(c: Cluster, ns: str, obj: dict[str, Any]) -> None:
    kind = obj["kind"]
    if kind == "Secret":
        c.core.create_namespaced_secret(ns, obj)
    elif kind == "ConfigMap":
        c.core.create_namespaced_config_map(ns, obj)
    else:
        c.custom.create_namespaced_custom_object(*ARGO, ns, kind.lower() + "s", obj)


def appset(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "metadata": {"name": "my-app"},
        "spec": {
            "goTemplate": True, "goTemplateOptions": ["missingkey=error"],
            "generators": [{"plugin": {"configMapRef": {"name": PLUGIN_CM},
                                       "input": {"parameters": {"namespace": ns, "drcontrol": "app"}},
                                       "requeueAfterSeconds": 1800}}],
            "template": {
                "metadata": {"name": "my-app-{{.cluster}}",
                             "annotations": {"ramendr.openshift.io/dr-generation": "{{.generation}}"}},
                "spec": {"project": "default",
                         "source": {"repoURL": "https://example.invalid/my-app.git", "targetRevision": "HEAD",
                                    "path": "deploy"},
                         "destination": {"name": "{{.cluster}}", "namespace": ns}}},
        },
    }


@pytest.fixture
def argo(argo_crds: None, drpair: DRPair, tmp_path: Path) -> Iterator[Cluster]:
    """Plugin (with the refresher) and the ApplicationSet controller, both on east, for this test's namespace."""
    east, ns = drpair.clusters["east"], drpair.namespace
    token = secrets.token_hex(16)
    (tmp_path / "token").write_text(token)
    args = [sys.executable, "-m", "reconciler.integrations.appset_plugin", "--listen", "127.0.0.1:0",
            "--token-file", str(tmp_path / "token"), "--argocd-kubeconfig", str(east.kubeconfig),
            "--argocd-namespace", ns, "--plugin-configmap", PLUGIN_CM]
    for name, c in drpair.clusters.items():
        args += ["--cluster", f"{name}={c.kubeconfig}"]
    plugin = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    assert plugin.stderr is not None
    m = re.search(r"on (127\.0\.0\.1):(\d+)", plugin.stderr.readline())
    assert m, "the plugin did not start"
    for obj in _argo_objects(token, f"http://{m[1]}:{m[2]}", drpair.clusters):
        _create(east, ns, obj)
    probe = free_port()
    ctl = Component(
        name="argocd-applicationset-controller",
        argv=[str(argocd.appset_controller()), f"--kubeconfig={east.kubeconfig}", f"--namespace={ns}",
              f"--applicationset-namespaces={ns}", f"--metrics-addr=127.0.0.1:{free_port()}",
              f"--probe-addr=127.0.0.1:{probe}", f"--webhook-addr=127.0.0.1:{free_port()}",
              "--enable-scm-providers=false", "--logformat=text", "--argocd-repo-server=127.0.0.1:1"],
        log=str(tmp_path / "appset-controller.log"), port=probe, ready_url=f"http://127.0.0.1:{probe}/healthz")
    ctl.start()
    try:
        yield east
    finally:
        ctl.stop()
        plugin.terminate()
        _, err = plugin.communicate(timeout=10)
        assert token not in err, "the token must never be logged"
        print("--- plugin ---\n" + "\n".join(err.splitlines()[-15:]))
        print("--- appset controller ---\n" + Path(ctl.log).read_text()[-3000:])


def applications(c: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    items = c.custom.list_namespaced_custom_object(*ARGO, ns, "applications")["items"]
    return {a["metadata"]["name"]: a for a in items if not a["metadata"].get("deletionTimestamp")}


def test_applications_follow_a_relocate_and_a_failover_within_seconds(drpair: DRPair, argo: Cluster) -> None:
    ns = drpair.namespace
    drpair.protect_on_east()
    argo.custom.create_namespaced_custom_object(*ARGO, ns, "applicationsets", appset(ns))
    drpair.wait(lambda: set(applications(argo, ns)) == {"my-app-east"}, "Application my-app-east", timeout=60)
    app = applications(argo, ns)["my-app-east"]
    assert app["spec"]["destination"]["name"] == "east"

    t0 = time.monotonic()
    for c in ("east", "west"):
        harness.set_action(drpair.clusters[c], ns, "Relocate", "west")
    drpair.wait(lambda: set(applications(argo, ns)) == {"my-app-west"}, "Application my-app-west only",
                timeout=90)
    relocate = time.monotonic() - t0
    assert applications(argo, ns)["my-app-west"]["metadata"]["annotations"][
        "ramendr.openshift.io/dr-generation"] == "2"

    drpair.operators["west"].kill()
    t1 = time.monotonic()
    harness.set_action(drpair.clusters["east"], ns, "Failover", "east")
    drpair.wait(lambda: set(applications(argo, ns)) == {"my-app-east"}, "Application my-app-east again",
                timeout=90)
    failover = time.monotonic() - t1
    print(f"Argo CD follows: relocate {relocate:.1f}s, failover {failover:.1f}s (plugin poll: 1800 s)")
    try:
        got = argo.custom.get_namespaced_custom_object(*ARGO, ns, "applicationsets", "my-app")
    except ApiException as e:  # pragma: no cover - diagnostics only
        pytest.fail(f"ApplicationSet unreadable: {e}")
    assert "argocd.argoproj.io/application-set-refresh" not in (got["metadata"].get("annotations") or {}), \
        "Argo CD removes the refresh annotation once it has generated again"
