"""The real Argo CD ApplicationSet controller follows ReadyForApplication within seconds, through our plugin.

Argo CD's ApplicationSet controller (built from the argo-cd/v3 module, e2e/localenv/argocd.py)
runs against east's API server with an ApplicationSet whose plugin generator is ours
(reconciler/integrations/appset_plugin.py, reading the DRControl on both clusters). The
ApplicationSet asks again only every hour: the Applications follow a relocate or a failover within
seconds only because the plugin annotates the ApplicationSet for a refresh when
ReadyForApplication changes. The DRControls name the ApplicationSet (spec.application.argoCD), so
a relocate demotes only after the plugin acknowledged that Argo CD's Application is gone. Argo
CD's application controller is not run; the Applications are what it would sync. A sampler
records, every 0.1 s, which Applications exist and what each VRG is asked to be.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv import argocd as argoenv
from e2e.localenv.clients import Cluster
from reconciler.plan.application import STOPPED_ANNOTATION
from tests.e2e.conftest import DRPair

CONFIGMAP = "ramen-p2p-appset-plugin"


@dataclass
class ArgoCD:
    namespace: str
    east: Cluster

    def applications(self) -> dict[str, dict[str, Any]]:
        items = self.east.custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", self.namespace,
                                                               "applications", _request_timeout=5)["items"]
        return {a["metadata"]["name"]: a for a in items}


@pytest.fixture(scope="module")
def argocd(clusters: dict[str, Cluster], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoCD]:
    work = tmp_path_factory.mktemp("argocd")
    namespace = f"argocd-{secrets.token_hex(3)}"
    token = secrets.token_hex(16)
    (work / "token").write_text(token + "\n")
    east = clusters["east"]
    log = work / "plugin.log"
    argv = [sys.executable, "-m", "reconciler.integrations.appset_plugin", "--listen", "127.0.0.1:0",
            "--token-file", str(work / "token"), "--api-timeout", "3",
            "--argocd-kubeconfig", str(east.kubeconfig), "--argocd-namespace", namespace,
            "--plugin-configmap", CONFIGMAP]
    for name, c in clusters.items():
        argv += ["--cluster", f"{name}={c.kubeconfig}"]
    with log.open("w") as f:
        plugin = subprocess.Popen(argv, stderr=f, stdout=f)
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"on (127\.0\.0\.1):(\d+)", log.read_text())):
            assert plugin.poll() is None and time.monotonic() < deadline, f"plugin did not start: {log.read_text()}"
            time.sleep(0.1)
        base_url = f"http://{m[1]}:{m[2]}"
        with argoenv.running(east.kubeconfig, namespace, argoenv.Plugin(CONFIGMAP, base_url, token),
                             {n: c.kubeconfig for n, c in clusters.items()}, work):
            yield ArgoCD(namespace, east)
    finally:
        plugin.terminate()
        plugin.wait(10)
        assert token not in log.read_text(), "the token must never be logged"


def applicationset(argo: ArgoCD, pair: DRPair) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": pair.namespace, "namespace": argo.namespace},
        "spec": {
            "goTemplate": True, "goTemplateOptions": ["missingkey=error"],
            "generators": [{"plugin": {"configMapRef": {"name": CONFIGMAP},
                                       "input": {"parameters": {"namespace": pair.namespace, "drcontrol": "app"}},
                                       # Only a refresh can make it follow a transition within the test.
                                       "requeueAfterSeconds": 3600}}],
            # No application controller runs to remove a resources finalizer.
            "syncPolicy": {"preserveResourcesOnDeletion": True},
            "template": {
                "metadata": {"name": f"{pair.namespace}-{{{{.cluster}}}}",
                             "annotations": {"ramendr.openshift.io/dr-generation": "{{.generation}}"}},
                "spec": {"project": "default",
                         "source": {"repoURL": "https://git.example/app.git", "targetRevision": "HEAD",
                                    "path": "deploy"},
                         "destination": {"name": "{{.cluster}}", "namespace": "{{.namespace}}"}}},
        },
    }


@dataclass
class Sample:
    t: float
    apps: dict[str, bool]
    vrg: dict[str, str]


@dataclass
class Sampler:
    """Which Applications exist and what each VRG is asked to be, 10 times a second."""

    argo: ArgoCD
    pair: DRPair
    samples: list[Sample] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def apps(self) -> dict[str, bool]:
        names = self.argo.applications()
        return {c: f"{self.pair.namespace}-{c}" in names for c in self.pair.clusters}

    def run(self) -> None:
        # VRGs first: an Application still there after its VRG read Secondary was there at that moment.
        while not self.stopped.wait(0.1):
            try:
                t = time.monotonic()
                vrgs = {n: str(((self.pair.vrg(n) or {}).get("spec") or {}).get("replicationState") or "")
                        for n in self.pair.clusters}
                self.samples.append(Sample(t, self.apps(), vrgs))
            except ApiException:  # an API hiccup loses one sample, not the test
                continue

    def first(self, t0: float, pred: Callable[[Sample], bool]) -> float:
        deadline = time.monotonic() + 10
        while True:
            found = next((s.t for s in self.samples if s.t >= t0 and pred(s)), None)
            if found is not None:
                return found - t0
            assert time.monotonic() < deadline, "the sampler never recorded what the test saw"
            time.sleep(0.1)

    def both_since(self, t0: float) -> list[float]:
        return [round(s.t - t0, 1) for s in self.samples if s.t >= t0 and all(s.apps.values())]


@pytest.fixture
def sampler(argocd: ArgoCD, drpair: DRPair) -> Iterator[Sampler]:
    drpair.clusters["east"].custom.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", argocd.namespace, "applicationsets", applicationset(argocd, drpair))
    s = Sampler(argocd, drpair)
    t = threading.Thread(target=s.run, daemon=True)
    t.start()
    yield s
    s.stopped.set()
    t.join(5)
    drpair.clusters["east"].custom.delete_namespaced_custom_object(
        "argoproj.io", "v1alpha1", argocd.namespace, "applicationsets", drpair.namespace)


def protect_with_argocd(argo: ArgoCD, pair: DRPair) -> None:
    """DRControls that name the ApplicationSet: demotions wait for the plugin's acknowledgement."""
    for c in pair.clusters.values():
        d = harness.drcontrol(pair.namespace, "app", "east")
        d["spec"]["application"] = {"argoCD": {"applicationSet": pair.namespace, "namespace": argo.namespace}}
        c.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, pair.namespace, "drcontrols", d)


def _only(sampler: Sampler, cluster: str) -> Callable[[], bool]:
    return lambda: sampler.apps() == {c: c == cluster for c in sampler.pair.clusters}


def test_argocd_creates_the_application_on_the_primary_and_a_relocate_moves_it(
        drpair: DRPair, sampler: Sampler) -> None:
    protect_with_argocd(sampler.argo, drpair)
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary at generation 1")
    waited = drpair.wait(_only(sampler, "east"), "the Application for east only", timeout=30)
    app = sampler.argo.applications()[f"{drpair.namespace}-east"]
    assert app["spec"]["destination"] == {"name": "east", "namespace": drpair.namespace}
    assert app["metadata"]["annotations"]["ramendr.openshift.io/dr-generation"] == "1"
    drpair.wait(lambda: drpair.secondary_settled("west", 1), "west Secondary at generation 1")
    print(f"protect with Argo CD: the Application for east seen {waited:.1f}s after east was seen ready")

    t0 = time.monotonic()
    for c in ("east", "west"):
        harness.set_action(drpair.clusters[c], drpair.namespace, "Relocate", "west")
    drpair.wait(_only(sampler, "west"), "the Application for west only", timeout=90)
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2")
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east Secondary at generation 2")
    gone = sampler.first(t0, lambda s: not s.apps["east"])
    there = sampler.first(t0, lambda s: s.apps["west"])
    demoted = sampler.first(t0, lambda s: s.vrg["east"] == "secondary")
    print(f"relocate with Argo CD: east's Application deleted after {gone:.1f}s, west's created after {there:.1f}s, "
          f"east's VRG asked to be Secondary after {demoted:.1f}s")
    assert not sampler.both_since(t0), f"Applications for both clusters at {sampler.both_since(t0)[:5]}"
    # The operator waited for the plugin's acknowledgement that Argo CD's Application was gone.
    assert gone <= demoted, "east's VRG was asked to be Secondary while its Application still existed"
    assert STOPPED_ANNOTATION in drpair.drc("east")["metadata"]["annotations"]
    assert sampler.argo.applications()[f"{drpair.namespace}-west"]["metadata"]["annotations"][
        "ramendr.openshift.io/dr-generation"] == "2"


def test_argocd_follows_a_failover_with_the_old_primary_gone(drpair: DRPair, sampler: Sampler) -> None:
    protect_with_argocd(sampler.argo, drpair)
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary at generation 1")
    drpair.wait(_only(sampler, "east"), "the Application for east only", timeout=30)
    drpair.operators["east"].kill()
    t0 = time.monotonic()
    harness.set_action(drpair.clusters["west"], drpair.namespace, "Failover", "west")
    # east's DRControl still says ready (its operator is dead); the plugin answers with the cluster
    # at the higher dr-state generation.
    drpair.wait(_only(sampler, "west"), "the Application for west only", timeout=60)
    there = sampler.first(t0, lambda s: s.apps["west"])
    gone = sampler.first(t0, lambda s: not s.apps["east"])
    print(f"failover with Argo CD: west's Application created after {there:.1f}s, east's deleted after {gone:.1f}s")
    # (Argo CD creates before it deletes, so both may exist for a moment: east's cluster is lost anyway.)
    t1 = time.monotonic()
    drpair.operators["east"].start()
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east demoted at generation 2 after returning")
    assert sampler.apps() == {"east": False, "west": True}
    demoted = sampler.first(t1, lambda s: s.vrg["east"] == "secondary")
    print(f"old Primary back: its VRG was asked to be Secondary after {demoted:.1f}s (its Application was gone)")

