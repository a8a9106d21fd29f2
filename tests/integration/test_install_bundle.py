"""The rendered install bundle against a real API server: `kubectl apply --dry-run=server`."""

from __future__ import annotations

import subprocess

import pytest

from e2e.crdinstall import OUR_CRDS, install_crds
from e2e.localenv.build import binaries
from e2e.localenv.clients import Cluster
from reconciler.install import Credentials, InstallOptions, documents, render_install

pytestmark = pytest.mark.realenv


def dry_run(cluster: Cluster, bundle: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig), "apply",
                           "--dry-run=server", "-f", "-"], input=bundle, capture_output=True, text=True, timeout=60)


def bundle_for(namespace: str) -> str:
    # A fresh install: the test's namespace stands in for ramen-system (namespaced objects need it to
    # exist), and cluster names derived from it keep clear of the DRPolicy other tests created.
    suffix = namespace.rsplit("-", 1)[-1]
    return render_install(InstallOptions(
        cluster_name=f"east-{suffix}", peer=f"west-{suffix}", s3_endpoint="http://s3.example.com:9000",
        namespace=namespace,
        with_policy=True, replicas=2, hmac_secret_name="coordination-hmac", cidrs=("10.10.0.0/16",),
        credentials=Credentials("AKIDEXAMPLE", "example-secret")))


def warn_below_restricted(cluster: Cluster, namespace: str) -> None:
    """Pod Security admission warns about pod templates below "restricted" (the bundle's Namespace label
    would enforce it, but a dry run does not store that label)."""
    cluster.core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/warn": "restricted"}}})


def test_rendered_bundle_applies_cleanly_with_server_dry_run(east: Cluster, namespace: str) -> None:
    # The custom objects validate only against served CRDs, so ours are installed for real first.
    install_crds(east.api, OUR_CRDS)
    warn_below_restricted(east, namespace)
    bundle = bundle_for(namespace)
    result = dry_run(east, bundle)
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    docs = documents(bundle)
    assert len(lines) == len(docs), result.stdout
    assert all(ln.endswith("(server dry run)") for ln in lines), result.stdout
    for d in docs:
        assert any(f"/{d['metadata']['name']} " in ln for ln in lines), f"{d['kind']} {d['metadata']['name']}"
    assert "PodSecurity" not in result.stderr, result.stderr


def test_server_dry_run_rejects_an_invalid_object(east: Cluster, namespace: str) -> None:
    # Proves the dry run above really validated the custom objects against their schemas.
    install_crds(east.api, OUR_CRDS)
    bundle = bundle_for(namespace).replace("clusterFence: Unfenced", "clusterFence: Sideways", 1)
    result = dry_run(east, bundle)
    assert result.returncode != 0
    assert "clusterFence" in result.stderr and "Unsupported value" in result.stderr, result.stderr


def test_server_dry_run_warns_about_a_pod_below_restricted(east: Cluster, namespace: str) -> None:
    # Proves the PodSecurity check above is live: the same bundle with capabilities kept is flagged.
    install_crds(east.api, OUR_CRDS)
    warn_below_restricted(east, namespace)
    bundle = bundle_for(namespace)
    kept = bundle.replace("          capabilities:\n            drop:\n            - ALL\n", "", 1)
    assert kept != bundle
    result = dry_run(east, kept)
    assert result.returncode == 0, result.stderr
    assert 'would violate PodSecurity "restricted' in result.stderr, result.stderr
