"""The real Flux controllers move the application: it runs only on the Primary, and leaves before a demotion.

source-controller and kustomize-controller (built from their Go modules, e2e/localenv/gitops.py)
run against both clusters. Each test fills a bucket on its own S3 server with the application
(one ConfigMap standing for its workloads: there is no kubelet), and a Flux `Bucket` source on
each cluster reads it. The DRControl owns the Kustomization (spec.application.fluxKustomization).
A sampler records, every 0.1 s, where the application's object exists and what each VRG is asked
to be; the assertions run on that record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv import flux as fluxenv
from e2e.localenv.clients import Cluster, s3_client
from tests.e2e.conftest import DRPair

WORKLOAD = "workload"
APP_MANIFEST = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {WORKLOAD}
data:
  stands-for: the application's workloads
"""


@dataclass
class Sample:
    t: float
    running: dict[str, bool]
    vrg: dict[str, str]


@dataclass
class Sampler:
    """Where the application exists and what each VRG is asked to be, 10 times a second."""

    clusters: dict[str, Cluster]
    namespace: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _running(self, c: Cluster) -> bool:
        try:
            c.core.read_namespaced_config_map(WORKLOAD, self.namespace, _request_timeout=5)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def _vrg(self, c: Cluster) -> str:
        v = harness.get_vrg(c, self.namespace) or {}
        return str((v.get("spec") or {}).get("replicationState") or "")

    def run(self) -> None:
        # The reads of one sample are not atomic, so their order makes every overlap seen a real one:
        # VRGs before applications (an application still there after a VRG read Secondary was there
        # when it was read), and west's application before east's (the relocate moves it east ->
        # west: east's application still there after west's was seen was there at the same time).
        while not self._stop.wait(0.1):
            try:
                t = time.monotonic()
                vrgs = {n: self._vrg(c) for n, c in self.clusters.items()}
                apps = {n: self._running(self.clusters[n]) for n in sorted(self.clusters, reverse=True)}
                self.samples.append(Sample(t, apps, vrgs))
            except Exception:  # an API hiccup loses one sample, not the test
                continue

    def since(self, t0: float) -> list[Sample]:
        return [s for s in self.samples if s.t >= t0]

    def first(self, t0: float, cluster: str, running: bool) -> float:
        """Seconds from t0 to the first sample with the application (not) on `cluster`.

        The caller saw it with a read of its own; the sampler may record it a little later.
        """
        return self._first(t0, lambda s: s.running[cluster] == running)

    def first_vrg(self, t0: float, cluster: str, state: str) -> float:
        return self._first(t0, lambda s: s.vrg[cluster] == state)

    def _first(self, t0: float, pred: Callable[[Sample], bool]) -> float:
        deadline = time.monotonic() + 10
        while True:
            found = next((s.t for s in self.since(t0) if pred(s)), None)
            if found is not None:
                return found - t0
            assert time.monotonic() < deadline, "the sampler never recorded what the test saw"
            time.sleep(0.1)

    def never_under_a_secondary_vrg(self) -> None:
        """I6 as observed: no sample has the application on a cluster whose VRG is asked to be secondary."""
        bad = [(round(s.t, 1), c) for s in self.samples for c, r in s.running.items() if r and s.vrg[c] == "secondary"]
        assert not bad, f"the application ran beside a Secondary VRG at {bad[:5]}"


@pytest.fixture(scope="module")
def flux(clusters: dict[str, Cluster], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with fluxenv.running({n: c.kubeconfig for n, c in clusters.items()}, tmp_path_factory.mktemp("flux")):
        yield


@pytest.fixture
def sampler(drpair: DRPair) -> Iterator[Sampler]:
    s = Sampler(drpair.clusters, drpair.namespace)
    t = threading.Thread(target=s.run, daemon=True)
    t.start()
    yield s
    s._stop.set()
    t.join(5)


def protect_with_flux(pair: DRPair) -> None:
    """The application in a bucket of the pair's S3 server, a Bucket source on each cluster, the DRControls."""
    bucket = pair.env.add_bucket(pair.env.s3, "apps")
    s3_client(bucket).put_object(Bucket="apps", Key="app/workload.yaml", Body=APP_MANIFEST.encode())
    source = fluxenv.BucketSource("apps", "apps", bucket["endpoint"], bucket["region"], bucket["accessKeyId"],
                                  bucket["secretAccessKey"])
    for c in pair.clusters.values():
        for obj in source.objects(pair.namespace):
            if obj["kind"] == "Secret":
                c.core.create_namespaced_secret(pair.namespace, obj)
            else:
                c.custom.create_namespaced_custom_object("source.toolkit.fluxcd.io", "v1", pair.namespace,
                                                         "buckets", obj)
    for c in pair.clusters.values():
        d = harness.drcontrol(pair.namespace, "app", "east")
        d["spec"]["application"] = {"fluxKustomization": {
            "name": "app", "namespace": pair.namespace,
            "spec": {"interval": "10m", "retryInterval": "5s", "path": "./app", "prune": True,
                     "targetNamespace": pair.namespace,
                     "sourceRef": {"kind": "Bucket", "name": source.name}}}}
        c.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, pair.namespace, "drcontrols", d)


def running(pair: DRPair, sampler: Sampler) -> dict[str, bool]:
    return {n: sampler._running(c) for n, c in pair.clusters.items()}


def test_flux_applies_on_the_primary_and_a_relocate_moves_the_application(
        flux: None, drpair: DRPair, sampler: Sampler) -> None:
    protect_with_flux(drpair)
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary at generation 1")
    drpair.wait(lambda: running(drpair, sampler)["east"], "Flux applies the application on east", timeout=60)
    drpair.wait(lambda: drpair.secondary_settled("west", 1), "west Secondary at generation 1")
    assert not running(drpair, sampler)["west"], "the Secondary must not run the application"
    assert harness.condition(drpair.drc("east"), "FluxKustomization").get("reason") == "Present"

    t0 = time.monotonic()
    for c in ("east", "west"):
        harness.set_action(drpair.clusters[c], drpair.namespace, "Relocate", "west")
    drpair.wait(lambda: running(drpair, sampler)["west"] and not running(drpair, sampler)["east"],
                "the application on west only", timeout=90)
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2")
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east Secondary at generation 2")
    gone, there = sampler.first(t0, "east", False), sampler.first(t0, "west", True)
    print(f"relocate with Flux: the application left east after {gone:.1f}s and ran on west after {there:.1f}s")
    sampler.never_under_a_secondary_vrg()
    both = [round(s.t - t0, 1) for s in sampler.since(t0) if all(s.running.values())]
    assert not both, f"a relocate ran the application on both clusters at {both[:5]}"
    demoted = sampler.first_vrg(t0, "east", "secondary")
    assert gone <= demoted, "east's VRG was demoted before Flux pruned the application"
    assert harness.condition(drpair.drc("east"), "FluxKustomization").get("reason") == "Absent"


def test_failover_with_flux_and_the_old_primary_returning_prunes_it_before_its_demotion(
        flux: None, drpair: DRPair, sampler: Sampler) -> None:
    protect_with_flux(drpair)
    drpair.wait(lambda: drpair.primary_ready("east", 1), "east Primary at generation 1")
    drpair.wait(lambda: running(drpair, sampler)["east"], "Flux applies the application on east", timeout=60)
    drpair.operators["east"].kill()
    t0 = time.monotonic()
    harness.set_action(drpair.clusters["west"], drpair.namespace, "Failover", "west")
    drpair.wait(lambda: running(drpair, sampler)["west"], "Flux applies the application on west", timeout=60)
    print(f"failover with Flux: the application ran on west after {sampler.first(t0, 'west', True):.1f}s")
    assert running(drpair, sampler)["east"], "east's operator is dead: nothing removed the application there"

    t1 = time.monotonic()
    drpair.operators["east"].start()
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east demoted at generation 2 after returning")
    assert not running(drpair, sampler)["east"]
    gone = sampler.first(t1, "east", False)
    demoted = sampler.first_vrg(t1, "east", "secondary")
    print(f"old Primary back: the application left east after {gone:.1f}s, its VRG was demoted after {demoted:.1f}s")
    assert gone <= demoted
    sampler.never_under_a_secondary_vrg()
