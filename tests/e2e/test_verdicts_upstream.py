"""What kstatus, Flux, Argo CD and `kubectl wait` make of a DRControl in every phase, by their own code.

Both operators take one application through protect, relocate, failover, an S3 outage and a
corrupt dr-state. Each phase is held (a VRG simulator or an operator stopped, S3 down) while the
DRControl is read from the API server and the real `kubectl wait --timeout=0s` is asked about it.
Then the captured objects are judged by upstream Go code (e2e/localenv/verdicts.py):
sigs.k8s.io/cli-utils kstatus and Flux's fork, Flux's CEL evaluator over
flux/drcontrol-kustomization.yaml's expressions, and Argo CD's settings and Lua code over
argocd/argocd-cm-health.yaml. `EXPECTED` is the decided verdict (docs/integrations.md); the
Python interpreters of the unit tests (lupa, cel-python) must agree with the Go code on every object.
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from e2e import harness
from e2e.localenv import build, verdicts
from e2e.localenv.clients import Cluster
from tests.e2e.conftest import DRPair
from tests.unit.test_integrations_flux_cel import flux_status as python_flux_status
from tests.unit.test_integrations_health_lua import health as python_argocd_health

ROOT = Path(__file__).resolve().parents[2]
DR_STATE = "{ns}/app/dr-state"

# phase: (kstatus and Flux's kstatus, Flux CEL gate, Argo CD health, wait Ready, wait ReadyForApplication)
EXPECTED: dict[str, tuple[str, str, str, bool, bool]] = {
    # Created, no operator has written status yet (the CRD's status default is observedGeneration 0).
    "not-yet-seen": ("InProgress", "InProgress", "Progressing", False, False),
    "primary": ("Current", "Current", "Healthy", True, True),
    "secondary": ("Current", "InProgress", "Healthy", True, False),
    # The spec changed while both operators were down: the status is for the previous generation.
    "spec-not-yet-observed": ("InProgress", "InProgress", "Progressing", False, False),
    "relocate-source-waiting": ("InProgress", "InProgress", "Progressing", False, False),
    "relocate-target-waiting": ("InProgress", "InProgress", "Progressing", False, False),
    "failover-target-waiting": ("InProgress", "InProgress", "Progressing", False, False),
    # Roles frozen by an outage: Stalled, so a wait fails with the cause; the Primary keeps its app.
    "s3-outage-primary": ("Failed", "Current", "Degraded", False, True),
    "s3-outage-secondary": ("Failed", "Failed", "Degraded", False, False),
    "corrupt-dr-state": ("Failed", "Failed", "Degraded", False, False),
}


def _signature(obj: dict[str, Any]) -> Any:
    st = obj.get("status") or {}
    return (obj["metadata"].get("generation"), st.get("observedGeneration"), st.get("phase"),
            [(c.get("type"), c.get("status"), c.get("reason"), c.get("observedGeneration"))
             for c in st.get("conditions") or []])


def _kubectl_wait(c: Cluster, namespace: str, name: str, condition: str) -> bool:
    out = subprocess.run([str(build.binaries().kubectl), f"--kubeconfig={c.kubeconfig}", "-n", namespace, "wait",
                          f"--for=condition={condition}", "--timeout=0s", f"drcontrols.ramendr.openshift.io/{name}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 or "condition not met" in out.stderr or "timed out" in out.stderr, out.stderr
    return out.returncode == 0


class Recorder:
    """Captured objects and what `kubectl wait` said about each while it was unchanged."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.waits: dict[str, tuple[bool, bool]] = {}

    def capture(self, phase: str, c: Cluster, namespace: str, name: str = "app") -> None:
        for _ in range(10):
            before = harness.get_drc(c, namespace, name)
            waits = (_kubectl_wait(c, namespace, name, "Ready"),
                     _kubectl_wait(c, namespace, name, "ReadyForApplication"))
            after = harness.get_drc(c, namespace, name)
            if _signature(before) == _signature(after):
                self.objects[phase], self.waits[phase] = after, waits
                return
            time.sleep(0.5)
        raise AssertionError(f"{phase}: the DRControl on {c.name} kept changing; last {after.get('status')}")


@pytest.fixture
def unwatched_namespace(east: Cluster) -> Iterator[str]:
    """A namespace no operator watches: a DRControl there keeps the status the API server gives it."""
    name = f"t-unwatched-{secrets.token_hex(3)}"
    east.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    harness.force_delete_drcontrols(east, name)
    east.core.delete_namespace(name)


@pytest.fixture
def argocd_cm_namespace(east: Cluster) -> Iterator[str]:
    """argocd-cm with our health check, where Argo CD's settings manager reads it."""
    name = f"t-argocd-{secrets.token_hex(3)}"
    east.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    cm = yaml.safe_load((ROOT / "argocd" / "argocd-cm-health.yaml").read_text())
    cm["metadata"]["namespace"] = name
    east.core.create_namespaced_config_map(name, cm)
    yield name
    east.core.delete_namespace(name)


def _wait_condition(drpair: DRPair, cluster: str, ctype: str, status: str, what: str, timeout: float = 60) -> None:
    drpair.wait(lambda: harness.condition(drpair.drc(cluster), ctype).get("status") == status, what, timeout)


def _drive_every_phase(drpair: DRPair, rec: Recorder, unwatched: str) -> None:
    east, west = drpair.clusters["east"], drpair.clusters["west"]
    ns = drpair.namespace
    east.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, unwatched, "drcontrols",
                                                harness.drcontrol(unwatched))
    rec.capture("not-yet-seen", east, unwatched)

    drpair.protect_on_east()
    # Settled, not just ready: the operator may still be updating the VRG (Reconciling for a moment).
    for c in ("east", "west"):
        _wait_condition(drpair, c, "Reconciling", "False", f"{c} settled")
        _wait_condition(drpair, c, "Ready", "True", f"{c} Ready")
    rec.capture("primary", east, ns)
    rec.capture("secondary", west, ns)

    for op in drpair.operators.values():
        op.kill()
    east.custom.patch_namespaced_custom_object(
        harness.GROUP, harness.VERSION, ns, "drcontrols", "app",
        {"spec": {"vrgSpec": {"pvcSelector": {"matchLabels": {"app": "app", "tier": "data"}}}}})
    rec.capture("spec-not-yet-observed", east, ns)
    for op in drpair.operators.values():
        op.start()
    drpair.wait(lambda: (drpair.drc("east").get("status") or {}).get("observedGeneration")
                == drpair.drc("east")["metadata"]["generation"], "east observes the new spec")
    # The new selector goes to the VRG; a relocate asked before it settles would be captured
    # while east still waits for that VRG update, not for the relocate.
    for c in ("east", "west"):
        _wait_condition(drpair, c, "Reconciling", "False", f"{c} settled on the new spec")
        _wait_condition(drpair, c, "Ready", "True", f"{c} Ready on the new spec")

    # Relocate to west, held while east's VRG simulator is stopped (no final sync, no demotion).
    drpair.simulators["east"].stop()
    harness.set_action(west, ns, "Relocate", "west")
    _wait_condition(drpair, "east", "ReadyForApplication", "False", "east stops the application")
    _wait_condition(drpair, "east", "Reconciling", "True", "east relocating")
    _wait_condition(drpair, "west", "Reconciling", "True", "west relocating")
    rec.capture("relocate-source-waiting", east, ns)
    rec.capture("relocate-target-waiting", west, ns)
    drpair.simulators["east"].start()
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2", timeout=90)
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east Secondary at generation 2", timeout=90)

    # Failover back to east with west's operator dead, held while east's VRG simulator is stopped.
    drpair.operators["west"].kill()
    drpair.simulators["east"].stop()
    harness.set_action(east, ns, "Failover", "east")
    _wait_condition(drpair, "east", "Reconciling", "True", "east failing over")
    drpair.wait(lambda: (drpair.drc("east").get("status") or {}).get("generation") == 3, "east claims generation 3")
    rec.capture("failover-target-waiting", east, ns)
    drpair.simulators["east"].start()
    drpair.wait(lambda: drpair.primary_ready("east", 3), "east Primary at generation 3", timeout=90)
    drpair.operators["west"].start()
    drpair.wait(lambda: drpair.secondary_settled("west", 3), "west Secondary at generation 3", timeout=90)

    drpair.env.stop("s3")
    for c in ("east", "west"):
        _wait_condition(drpair, c, "S3Reachable", "False", f"{c} reports S3 unreachable")
    rec.capture("s3-outage-primary", east, ns)
    rec.capture("s3-outage-secondary", west, ns)
    drpair.env.start("s3")
    for c in ("east", "west"):
        _wait_condition(drpair, c, "S3Reachable", "True", f"{c} reports S3 reachable again")

    bucket = drpair.env.s3["bucket"]
    drpair.s3.put_object(Bucket=bucket, Key=DR_STATE.format(ns=ns), Body=b'{"apiVersion": ')
    harness.set_action(west, ns, "Failover", "west")  # the cluster asked to act reads dr-state at once
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "Stalled").get("reason") == "CorruptObject",
                "west reports the corrupt dr-state")
    rec.capture("corrupt-dr-state", west, ns)


def test_upstream_verdicts_on_every_phase_of_a_real_run(drpair: DRPair, unwatched_namespace: str,
                                                        argocd_cm_namespace: str) -> None:
    rec = Recorder()
    _drive_every_phase(drpair, rec, unwatched_namespace)
    assert set(rec.objects) == set(EXPECTED)
    exprs = yaml.safe_load((ROOT / "flux" / "drcontrol-kustomization.yaml").read_text())["spec"]["healthCheckExprs"]
    ks = verdicts.kstatus_verdicts(rec.objects, exprs)
    argo = verdicts.argocd_verdicts(rec.objects, drpair.clusters["east"].kubeconfig, argocd_cm_namespace)
    got = {phase: (ks[phase]["kstatus"].get("status") or ks[phase]["kstatus"].get("error"),
                   ks[phase]["fluxKstatus"].get("status") or ks[phase]["fluxKstatus"].get("error"),
                   ks[phase]["fluxCEL"].get("status") or ks[phase]["fluxCEL"].get("error"),
                   argo[phase].get("status") or argo[phase].get("error"),
                   *rec.waits[phase])
           for phase in rec.objects}
    want = {phase: (k, k, cel, health, ready, rfa) for phase, (k, cel, health, ready, rfa) in EXPECTED.items()}
    report = json.dumps({p: {"objectStatus": rec.objects[p].get("status"), "kstatus": ks[p], "argocd": argo[p]}
                         for p in rec.objects if got[p] != want[p]}, indent=1)
    assert got == want, report
    # The messages carry the operator's words where a tool shows one.
    assert "frozen" in argo["s3-outage-secondary"]["message"]
    assert "frozen" in ks["corrupt-dr-state"]["kstatus"]["message"]
    # The Python interpreters used by the unit tests judge the same objects the same way.
    for phase, obj in rec.objects.items():
        assert python_flux_status(copy.deepcopy(obj)) == got[phase][2], phase
        assert python_argocd_health(copy.deepcopy(obj)) == (argo[phase]["status"], argo[phase]["message"]), phase
