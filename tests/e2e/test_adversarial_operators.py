"""Hostile Kubernetes and S3 objects against both running operators; an API server lost under leader election.

One DR pair (a private S3 server, both operators and both VRG simulators as processes) serves the
whole module; each case protects its own application, so cases do not see each other. Every case
checks that the operators keep running, that no role changes while the input is bad, that a
condition names the problem, and that protection resumes once the input is repaired.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv import LocalEnv, up
from e2e.localenv.clients import Cluster, kube_cluster
from reconciler.s3peer.envelope import Kind, encode
from tests.e2e.conftest import DRPair

G, V = harness.GROUP, harness.VERSION
#: A steady app's dr-state is re-read within ceil(apps / 4) poll intervals (the rotating check);
#: with a 1 s poll and the handful of apps of this module that is a few seconds.
NOTICE_WITHIN = 20.0


@pytest.fixture(scope="module")
def adv(clusters: dict[str, Cluster], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DRPair]:
    env = up([], root=tmp_path_factory.mktemp("advenv"))
    ns = f"adv-{secrets.token_hex(3)}"
    for c in clusters.values():
        c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        harness.configure_cluster(c, env.s3)
    logdir = tmp_path_factory.mktemp("advlogs")
    pair = DRPair(clusters, ns, env, logdir, harness.Timing())
    for name, c in clusters.items():
        pair.simulators[name] = harness.simulator_process(name, c.kubeconfig, env.s3_config_file(), logdir,
                                                          pair.timing)
        pair.operators[name] = harness.operator_process(name, c.kubeconfig, logdir, pair.timing,
                                                        ["--watch-namespace", ns])
    for p in (*pair.simulators.values(), *pair.operators.values()):
        p.start()
    yield pair
    for p in (*pair.operators.values(), *pair.simulators.values()):
        p.stop()
    for c in clusters.values():
        harness.force_delete_drcontrols(c, ns)
        try:
            c.core.delete_namespace(ns)
        except ApiException as e:  # pragma: no cover - best effort cleanup
            if e.status != 404:
                raise
    env.down()


def cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return harness.condition(obj, ctype)


def operators_alive(adv: DRPair) -> None:
    for p in adv.operators.values():
        assert p.running(), f"{p.name} exited:\n{p.tail(30)}"
        assert "Traceback" not in p.log.read_text(errors="replace"), p.tail(40)


def settled(adv: DRPair, app: str) -> None:
    adv.wait(lambda: harness.primary_ready(adv.clusters["east"], adv.namespace, 1, app), f"{app}: east Primary")
    adv.wait(lambda: harness.secondary_settled(adv.clusters["west"], adv.namespace, 1, app), f"{app}: west Secondary")


def hold_roles_while(adv: DRPair, app: str, until: Callable[[], bool], what: str, timeout: float) -> None:
    """Wait for `until`, checking on every look that the roles have not moved."""
    def check() -> bool:
        east_vrg, west_vrg = adv.vrg("east", app) or {}, adv.vrg("west", app) or {}
        assert east_vrg.get("spec", {}).get("replicationState") == "primary", east_vrg.get("spec")
        assert west_vrg.get("spec", {}).get("replicationState") == "secondary", west_vrg.get("spec")
        assert not harness.ready_for_application(adv.drc("west", app))
        return until()
    adv.wait(check, what, timeout)


# -- Kubernetes objects the schema accepts but that make no sense ---------------------------
def test_preferred_cluster_outside_the_policy_stalls_and_recovers(adv: DRPair) -> None:
    app = "pref-mallory"
    adv.protect(preferred="mallory", name=app)
    def stalled_on(name: str) -> Callable[[], bool]:
        return lambda: cond(adv.drc(name, app), "Stalled").get("reason") == "InvalidPreferredCluster"

    for name in ("east", "west"):
        adv.wait(stalled_on(name), f"{name} stalls on preferredCluster mallory")
        assert "mallory" in cond(adv.drc(name, app), "Stalled")["message"]
        assert adv.vrg(name, app) is None  # nothing created on a guess
    operators_alive(adv)
    for c in adv.clusters.values():
        c.custom.patch_namespaced_custom_object(G, V, adv.namespace, "drcontrols", app,
                                                {"spec": {"preferredCluster": "east"}})
    settled(adv, app)
    assert cond(adv.drc("east", app), "Stalled")["status"] == "False"


def test_action_aimed_outside_the_policy_fails_with_a_reason_and_changes_no_role(adv: DRPair) -> None:
    app = "target-mallory"
    adv.protect(name=app)
    settled(adv, app)
    harness.set_action(adv.clusters["west"], adv.namespace, "Failover", "mallory", app)

    def failed() -> bool:
        la = (adv.drc("west", app).get("status") or {}).get("lastAction") or {}
        return la.get("result") == "Failed" and "mallory" in la.get("message", "")
    hold_roles_while(adv, app, failed, "the failover to mallory is Failed with a reason", 30)
    operators_alive(adv)
    harness.set_action(adv.clusters["west"], adv.namespace, "Failover", "west", app)  # repaired: a real target
    adv.wait(lambda: harness.primary_ready(adv.clusters["west"], adv.namespace, 2, app), "west fails over")


# -- hostile dr-state on a steady application, noticed without any event ---------------------------
def _dr_state(**over: Any) -> bytes:
    body: dict[str, Any] = {"primary": "west", "generation": 2, "action": "Failover", "previousPrimary": "east",
                            "intentNonce": None, "changedAt": "2026-11-25T12:00:00Z"}
    body.update(over)
    import datetime as dt
    return encode(Kind.DR_STATE, "mallory", body, now=dt.datetime(2026, 11, 25, tzinfo=dt.UTC))[0]


HOSTILE = [
    ("mallory-primary", _dr_state(primary="mallory"), "UnknownPrimary"),
    ("primary-40kB", _dr_state(primary="m" * 40_000), "CorruptObject"),
    ("generation-beyond-int64", _dr_state(generation=2**64), "CorruptObject"),
    ("not-json", b"{ this is not json", "CorruptObject"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_dr_state_on_a_steady_app_is_noticed_in_bounded_time_and_repaired(
        adv: DRPair, case: tuple[str, bytes, str]) -> None:
    name, data, reason = case
    app = f"ds-{name}".lower()[:40]
    adv.protect(name=app)
    settled(adv, app)
    s3, bucket = adv.s3, adv.env.s3["bucket"]
    key = f"{adv.namespace}/{app}/dr-state"
    good = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    time.sleep(2)  # steady: nothing left to do, no event pending
    s3.put_object(Bucket=bucket, Key=key, Body=data)

    def both_stalled() -> bool:
        return all(cond(adv.drc(c, app), "Stalled").get("reason") == reason for c in ("east", "west"))
    hold_roles_while(adv, app, both_stalled, f"both clusters stall with {reason}", NOTICE_WITHIN)
    for c in ("east", "west"):
        msg = cond(adv.drc(c, app), "Stalled")["message"]
        assert "repaired" in msg and len(msg) <= 4096
    operators_alive(adv)

    s3.put_object(Bucket=bucket, Key=key, Body=good)
    adv.wait(lambda: all(cond(adv.drc(c, app), "Stalled").get("status") == "False" for c in ("east", "west")),
             "both recover once dr-state is repaired", NOTICE_WITHIN)
    settled(adv, app)
    st = adv.drc("east", app)["status"]
    assert st["generation"] == 1 and st["currentPrimary"] == "east"


# -- losing the API server under leader election ------------------------------------------------------
def test_leader_losing_its_api_server_exits_non_zero(private_env: Callable[[list[str]], LocalEnv],
                                                     tmp_path: Path) -> None:
    env = private_env(["solo"])
    solo = kube_cluster("solo", env.kubeconfig("solo"))
    harness.configure_cluster(solo, env.s3)
    op = harness.operator_process("solo", env.kubeconfig("solo"), tmp_path, harness.Timing(), ["--leader-elect"])
    op.start()
    try:
        harness.wait_for(lambda: "became leader" in op.log.read_text(errors="replace"), 60, "solo leads",
                         lambda: op.tail(20))
        env.stop("solo-apiserver")
        assert op.proc is not None
        try:
            rc = op.proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the operator kept running without its API server:\n{op.tail(20)}")
        assert rc == 1, op.tail(20)
        lines = [json.loads(x) for x in op.log.read_text().splitlines() if x.startswith("{")]
        assert any("lost the leader Lease" in x["msg"] for x in lines)
    finally:
        op.stop()
