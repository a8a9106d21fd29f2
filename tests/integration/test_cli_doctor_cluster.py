"""ramenctl doctor cluster against a real API server and S3: a healthy set-up, then broken ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml
from kubernetes import client

from e2e import harness
from e2e.localenv import LocalEnv
from e2e.localenv.build import binaries
from e2e.localenv.clients import kube_cluster
from reconciler.install import InstallOptions, documents, render_install
from reconciler.s3peer import Coordinator, ObjectStore

pytestmark = pytest.mark.realenv

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def doctor(kubeconfig: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler.cli.main", "doctor", "cluster", "--kubeconfig",
                           kubeconfig, "--cluster-name", "east", "--stale-after", "60"],
                          capture_output=True, text=True, timeout=120, cwd=harness.ROOT)


def lines_of(out: str) -> dict[str, str]:
    """check name -> status, from `  [status] name: detail` lines."""
    got = {}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("[") and "] " in s:
            status, rest = s[1:].split("] ", 1)
            got[rest.split(":", 1)[0]] = status
    return got


def test_doctor_passes_on_a_configured_cluster_and_names_a_broken_config(
        private_env: Callable[[list[str]], LocalEnv]) -> None:
    env = private_env(["solo"])
    c = kube_cluster("solo", env.kubeconfig("solo"))
    harness.configure_cluster(c, env.s3)
    bundle = render_install(InstallOptions(cluster_name="east", peer="west", s3_endpoint=env.s3["endpoint"]))
    rbac = [d for d in documents(bundle) if d["kind"] in RBAC_KINDS]
    subprocess.run([str(binaries().kubectl), "--kubeconfig", str(c.kubeconfig), "apply", "-f", "-"],
                   input=yaml.safe_dump_all(rbac), check=True, capture_output=True, text=True, timeout=60)
    store = ObjectStore.from_settings(env.s3)
    for name in ("east", "west"):  # the heartbeats both operators would write
        Coordinator(store, name).heartbeat(operator_version="test")

    ok = doctor(str(c.kubeconfig))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    checks = lines_of(ok.stdout)
    assert {k: v for k, v in checks.items() if v != "info"} == {
        "API server": "ok", **{f"CRD {n}": "ok" for n in (
            "drcontrols.ramendr.openshift.io", "drpolicies.ramendr.openshift.io", "drclusters.ramendr.openshift.io",
            "volumereplicationgroups.ramendr.openshift.io")},
        "operator config": "ok", "DRPolicy": "ok", "DRClusters": "ok", "RBAC": "ok", "S3 credentials": "ok",
        "S3": "ok", "heartbeat of east (this cluster)": "ok", "heartbeat of west (peer)": "ok"}, ok.stdout
    assert "clock vs API server" in checks and "clock vs S3" in checks

    # A ConfigMap whose RamenConfig has no profile, and a Role taken away.
    empty = "kind: RamenConfig\ns3StoreProfiles: []\n"
    c.core.patch_namespaced_config_map("ramen-dr-cluster-operator-config", harness.OPERATOR_NS,
                                       {"data": {"ramen_manager_config.yaml": empty}})
    client.RbacAuthorizationV1Api(c.api).delete_namespaced_role("ramen-p2p-operator", harness.OPERATOR_NS)
    bad = doctor(str(c.kubeconfig))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
    checks = lines_of(bad.stdout)
    assert checks["operator config"] == "FAIL" and checks["RBAC"] == "FAIL" and checks["S3"] == "skip"
    text = bad.stdout
    assert "s3StoreProfiles is empty" in text
    assert "may not get secrets s3-secret in ramen-system" in text
    assert text.count("fix: ") == 2
    assert "2 checks failed." in text


def test_doctor_on_a_cluster_that_does_not_answer_fails_the_first_check(tmp_path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "x",
                                  "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
                                  "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
                                  "users": [{"name": "x", "user": {"token": "t"}}]}))
    r = doctor(str(kc))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "[FAIL] API server: unreachable (connection refused)" in r.stdout


def test_doctor_probes_each_store_of_a_quorum_and_says_whether_a_majority_is_fit(
        private_env: Callable[..., LocalEnv]) -> None:
    env = private_env(["solo"], s3_servers=3)
    c = kube_cluster("solo", env.kubeconfig("solo"))
    harness.configure_cluster(c, env.s3, quorum=env.s3_extra)
    ok = doctor(str(c.kubeconfig))
    checks = lines_of(ok.stdout)
    stores = {k: v for k, v in checks.items() if k.startswith("quorum store ")}
    assert stores == {f"quorum store {p}": "ok" for p in (harness.PROFILE, *harness.QUORUM_PROFILES)}, ok.stdout
    assert checks["quorum"] == "ok" and "3 of 3 stores fit; a majority of 2" in ok.stdout

    env.stop("s3-2")
    one_down = doctor(str(c.kubeconfig))
    checks = lines_of(one_down.stdout)
    assert checks[f"quorum store {harness.QUORUM_PROFILES[0]}"] == "FAIL", one_down.stdout
    assert checks["quorum"] == "ok" and "2 of 3 stores fit" in one_down.stdout

    env.stop("s3-3")
    two_down = doctor(str(c.kubeconfig))
    assert two_down.returncode == 1 and "Traceback" not in two_down.stderr
    assert lines_of(two_down.stdout)["quorum"] == "FAIL"
    assert "1 of 3 stores fit; a majority of 2 is needed: roles are frozen" in two_down.stdout
