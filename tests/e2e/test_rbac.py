"""The rendered RBAC covers every API call the operator makes, and grants nothing else.

Statically: each (apiGroup, resource, verb) the code calls is granted by the rendered roles, no more,
and no wildcard appears. Live: both operators run with a ServiceAccount token bound to exactly those
roles (the local API servers enforce RBAC), take an app through protection and a relocate, and never
see a 403.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv import LocalEnv
from e2e.localenv.build import binaries
from e2e.localenv.clients import Cluster, kube_cluster
from reconciler.config import CONFIGMAP_NAME, P2P_CONFIGMAP_NAME
from reconciler.install import LEASE_NAME, OPERATOR_NAME, InstallOptions, documents, render_install
from tests.e2e.conftest import DRPair

NS = harness.OPERATOR_NS
SECRET = "s3-secret"  # the Secret harness.configure_cluster creates and the rendered config names


@dataclass(frozen=True)
class Call:
    group: str
    resource: str
    verb: str
    name: str | None = None
    """Set for calls on one named object in the operator's namespace."""


# Every request the operator sends, read from the code (reconciler/manager.py, controllers/, kube/).
# "list"+"watch" are the informers of Cache; "patch" is the Applier's JSON patch; "/status" is
# Applier.apply_status. Extend this list with each new call, then the roles.
RAMEN = "ramendr.openshift.io"
CLUSTER_WIDE = [
    *(Call(RAMEN, "drcontrols", v) for v in ("list", "watch", "patch")),  # cache; finalizer add/remove
    Call(RAMEN, "drcontrols/status", "patch"),
    *(Call(RAMEN, r, v) for r in ("drpolicies", "drclusters") for v in ("list", "watch")),
    Call(RAMEN, "drpolicies/status", "patch"),
    Call(RAMEN, "drclusters/status", "patch"),
    *(Call(RAMEN, "volumereplicationgroups", v) for v in ("get", "list", "watch", "create", "patch", "delete")),
    *(Call("csiaddons.openshift.io", "networkfences", v) for v in ("list", "watch", "create", "patch", "delete")),
    *(Call("storage.k8s.io", "storageclasses", v) for v in ("list", "watch")),
    *(Call("snapshot.storage.k8s.io", "volumesnapshotclasses", v) for v in ("list", "watch")),
    *(Call("replication.storage.openshift.io", "volumereplicationclasses", v) for v in ("list", "watch")),
    *(Call("", "events", v) for v in ("create", "patch")),  # EventRecorder, in each DRControl's namespace
    Call("authentication.k8s.io", "tokenreviews", "create"),  # KubeAuthorizer: who scrapes /metrics
    Call("authorization.k8s.io", "subjectaccessreviews", "create"),  # ... and may they
]
IN_OPERATOR_NAMESPACE = [
    Call("", "secrets", "get", SECRET),  # Manager._read_secret: the S3 profile's keys
    Call("", "configmaps", "get", CONFIGMAP_NAME),  # operator.main: Ramen's RamenConfig
    Call("", "configmaps", "get", P2P_CONFIGMAP_NAME),  # ... and ramen-p2p's own settings
    Call("coordination.k8s.io", "leases", "create", None),  # LeaderElector (--leader-elect)
    Call("coordination.k8s.io", "leases", "get", LEASE_NAME),
    Call("coordination.k8s.io", "leases", "update", LEASE_NAME),
]


# With a VolSync seed (--volsync-seed-secret-name) only: controllers/volsync.py reads the seed and keeps
# each app's PSK Secret `<vrg>-vs-secret` in the app's namespace.
SEED = "volsync-seed"
VOLSYNC_CLUSTER_WIDE = [Call("", "secrets", v) for v in ("get", "create", "patch")]
VOLSYNC_IN_OPERATOR_NAMESPACE = [Call("", "secrets", "get", SEED)]


def rendered_rbac(namespace: str = NS, volsync_seed: str | None = None) -> list[dict[str, Any]]:
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    opts = InstallOptions("east", "west", "http://s3.example.com", namespace=namespace, include_crds=False,
                          volsync_seed_secret_name=volsync_seed)
    return [d for d in documents(render_install(opts)) if d["kind"] in kinds]


def grants(rules: list[dict[str, Any]], call: Call) -> bool:
    for r in rules:
        names = r.get("resourceNames") or []
        if (call.group in r["apiGroups"] and call.resource in r["resources"] and call.verb in r["verbs"]
                and (not names or call.name in names)):
            return True
    return False


def rules_of(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    (role,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == OPERATOR_NAME]
    out: list[dict[str, Any]] = role["rules"]
    return out


def test_rendered_roles_grant_every_call_the_operator_makes() -> None:
    docs = rendered_rbac()
    cluster_rules, ns_rules = rules_of(docs, "ClusterRole"), rules_of(docs, "Role")
    missing = [c for c in CLUSTER_WIDE if not grants(cluster_rules, c)]
    missing += [c for c in IN_OPERATOR_NAMESPACE if not grants(ns_rules, c)]
    assert not missing, missing


@pytest.mark.parametrize("seed", [None, SEED])
def test_rendered_roles_grant_nothing_more_and_no_wildcard(seed: str | None) -> None:
    docs = rendered_rbac(volsync_seed=seed)
    text = yaml.safe_dump(docs)
    assert "'*'" not in text and '"*"' not in text
    volsync = seed is not None
    for kind, calls in (("ClusterRole", CLUSTER_WIDE + (VOLSYNC_CLUSTER_WIDE if volsync else [])),
                        ("Role", IN_OPERATOR_NAMESPACE + (VOLSYNC_IN_OPERATOR_NAMESPACE if volsync else []))):
        granted = {(g, r, v, n) for rule in rules_of(docs, kind) for g in rule["apiGroups"]
                   for r in rule["resources"] for v in rule["verbs"] for n in (rule.get("resourceNames") or [None])}
        needed = {(c.group, c.resource, c.verb, c.name) for c in calls}
        assert granted == needed, f"{kind}: extra {granted - needed}, missing {needed - granted}"
    # Bindings tie exactly these roles to the operator's ServiceAccount.
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        (b,) = [d for d in docs if d["kind"] == kind]
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": OPERATOR_NAME}
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": NS}]


# -- live: both operators under the rendered RBAC ------------------------------------------------
FORBIDDEN = re.compile(r"forbidden|\b403 [A-Z]", re.IGNORECASE)


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def token_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig for the operator's ServiceAccount: same server and CA, a TokenRequest token."""
    req = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token = cluster.core.create_namespaced_service_account_token(OPERATOR_NAME, NS, req).status.token
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx_name = cfg.get("current-context") or cfg["contexts"][0]["name"]
    ctx = next(c for c in cfg["contexts"] if c["name"] == ctx_name)
    out = copy.deepcopy(cfg)
    out["users"] = [{"name": OPERATOR_NAME, "user": {"token": token}}]
    out["contexts"] = [{"name": ctx_name, "context": {**ctx["context"], "user": OPERATOR_NAME}}]
    out["current-context"] = ctx_name
    path.write_text(yaml.safe_dump(out))
    path.chmod(0o600)
    return path


def delete_rbac(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    subprocess.run([str(binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig), "delete", "--ignore-not-found",
                    "-f", "-"], input=yaml.safe_dump_all(docs), capture_output=True, text=True, timeout=60)


def delete_lease(cluster: Cluster) -> None:
    """A Lease left by an earlier run would make the new elector wait out its duration."""
    try:
        client.CoordinationV1Api(cluster.api).delete_namespaced_lease(LEASE_NAME, NS)
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def rbac_pair(clusters: dict[str, Cluster], namespace: str, private_env: Callable[[list[str]], LocalEnv],
              tmp_path: Path) -> Iterator[tuple[DRPair, dict[str, Cluster]]]:
    """Like `drpair`, but each operator uses the rendered ServiceAccount's token and --leader-elect."""
    env = private_env([])
    timing = harness.Timing()
    rbac = rendered_rbac()
    pair = DRPair(clusters, namespace, env, tmp_path, timing)
    as_operator: dict[str, Cluster] = {}
    try:
        for name, c in clusters.items():
            harness.configure_cluster(c, env.s3)
            kubectl(c, "apply", "-f", "-", stdin=yaml.safe_dump_all(rbac))
            delete_lease(c)
            as_operator[name] = kube_cluster(name, token_kubeconfig(c, tmp_path / f"{name}-operator.kubeconfig"))
            pair.simulators[name] = harness.simulator_process(name, c.kubeconfig, env.s3_config_file(), tmp_path,
                                                              timing)
            pair.operators[name] = harness.operator_process(name, as_operator[name].kubeconfig, tmp_path, timing,
                                                            extra=["--leader-elect", "--watch-namespace", namespace])
        for p in (*pair.simulators.values(), *pair.operators.values()):
            p.start()
        yield pair, as_operator
    finally:
        for p in (*pair.operators.values(), *pair.simulators.values()):
            p.stop()
        for c in clusters.values():
            harness.force_delete_drcontrols(c, namespace)
            delete_lease(c)
            delete_rbac(c, rbac)


def test_operators_under_rendered_rbac_protect_and_relocate_without_403(
        rbac_pair: tuple[DRPair, dict[str, Cluster]]) -> None:
    pair, as_operator = rbac_pair
    for name, c in as_operator.items():
        # The operators really run as the ServiceAccount, and RBAC really limits it.
        review = client.AuthenticationV1Api(c.api).create_self_subject_review({"apiVersion": "authentication.k8s.io/v1",
                                                                                "kind": "SelfSubjectReview"})
        assert review.status.user_info.username == f"system:serviceaccount:{NS}:{OPERATOR_NAME}", name
        with pytest.raises(ApiException) as denied:
            c.core.list_namespaced_secret(NS)
        assert denied.value.status == 403

    pair.protect(preferred="east")
    pair.wait(lambda: pair.primary_ready("east", 1), "east Primary at generation 1", timeout=60)
    pair.wait(lambda: pair.secondary_settled("west", 1), "west Secondary at generation 1")
    for c in pair.clusters.values():
        harness.set_action(c, pair.namespace, "Relocate", "west")
    pair.wait(lambda: pair.primary_ready("west", 2), "west Primary at generation 2", timeout=90)
    pair.wait(lambda: pair.secondary_settled("east", 2), "east Secondary at generation 2")

    for name, c in pair.clusters.items():
        lease = client.CoordinationV1Api(c.api).read_namespaced_lease(LEASE_NAME, NS)
        assert lease.spec.holder_identity, f"{name}: the operator did not hold the Lease"
        events = c.core.list_namespaced_event(pair.namespace).items
        assert any(e.source and e.source.component == "ramen-operator" for e in events), f"{name}: no Events"
        log = pair.operators[name].log.read_text(errors="replace")
        denied_lines = [ln for ln in log.splitlines() if FORBIDDEN.search(ln)]
        assert not denied_lines, f"{name}: " + "\n".join(denied_lines[:5])
