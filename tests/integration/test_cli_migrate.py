"""ramenctl migrate from Ramen's hub objects, validated by Ramen's own CRDs, applied to a real cluster."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from e2e import harness
from e2e.crdinstall import OUR_CRDS, install_crds
from e2e.localenv import LocalEnv
from e2e.localenv.clients import kube_cluster

pytestmark = pytest.mark.realenv

HUB_DATA = harness.ROOT / "tests" / "data" / "ramen-hub"
RAMEN_SRC = harness.ROOT.parent / "shared" / "upstream" / "ramen-a78c2e37-src.tar.gz"
RAMEN_HUB_CRDS = ("drplacementcontrols", "drpolicies", "drclusters")
PLURALS = {"DRPlacementControl": "drplacementcontrols", "DRPolicy": "drpolicies", "DRCluster": "drclusters"}


def ramenctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler.cli.main", "migrate", *args], capture_output=True,
                          text=True, timeout=120, cwd=harness.ROOT)


def ramen_crds(dest: Path) -> list[Path]:
    """Ramen's hub CRDs from the pinned upstream source."""
    with tarfile.open(RAMEN_SRC) as tar:
        names = [f"ramen-a78c2e37/config/crd/bases/ramendr.openshift.io_{k}.yaml" for k in RAMEN_HUB_CRDS]
        tar.extractall(dest, members=[tar.getmember(n) for n in names], filter="data")
    return [dest / n for n in names]


def hub_docs() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in sorted(HUB_DATA.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            out += d["items"] if d.get("kind") == "List" else [d]
    return out


def generated(stdout: str) -> dict[str, list[dict[str, Any]]]:
    """The dry run's documents, by the cluster header before them."""
    by: dict[str, list[dict[str, Any]]] = {}
    cluster = ""
    chunk: list[str] = []
    for line in [*stdout.splitlines(), "# ---- cluster end"]:
        if line.startswith("# ---- cluster ") or line.startswith("# ramenctl migrate report"):
            if cluster:
                by[cluster] = [d for d in yaml.safe_load_all("\n".join(chunk)) if d]
            cluster, chunk = line.split()[3].rstrip(":") if line.startswith("# ---- cluster ") else "", []
        else:
            chunk.append(line)
    return by


def test_hub_objects_in_ramens_shapes_become_per_cluster_objects(
        private_env: Callable[[list[str]], LocalEnv], tmp_path: Path) -> None:
    env = private_env(["hub", "dr"])
    hub, dr = kube_cluster("hub", env.kubeconfig("hub")), kube_cluster("dr", env.kubeconfig("dr"))
    # The inputs pass Ramen's own schemas: created on a hub that serves Ramen's CRDs.
    install_crds(hub.api, ramen_crds(tmp_path))
    for d in hub_docs():
        if d["kind"] not in PLURALS:
            continue
        ns = d["metadata"].get("namespace")
        if ns:
            try:
                hub.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            except client.ApiException as e:
                if e.status != 409:
                    raise
            hub.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, ns, PLURALS[d["kind"]], d)
            hub.custom.patch_namespaced_custom_object_status(harness.GROUP, harness.VERSION, ns, PLURALS[d["kind"]],
                                                             d["metadata"]["name"], {"status": d["status"]})
        else:
            hub.custom.create_cluster_custom_object(harness.GROUP, harness.VERSION, PLURALS[d["kind"]], d)

    # From the exported directory (with OCM's PlacementDecision): a dry run.
    r = ramenctl("--from", str(HUB_DATA))
    assert r.returncode == 0, r.stderr
    out = generated(r.stdout)
    assert set(out) == {"east", "west"} and out["east"] == out["west"]
    kinds = [(d["kind"], d["metadata"]["name"]) for d in out["east"]]
    assert kinds == [("DRPolicy", "dr-policy-5m"), ("DRCluster", "east"), ("DRCluster", "west"),
                     ("DRControl", "busybox-drpc")]
    (ctl,) = [d for d in out["east"] if d["kind"] == "DRControl"]
    assert ctl["metadata"]["namespace"] == "busybox-sample"
    # The app runs on west now (its PlacementDecision), so west must make the first claim.
    assert ctl["spec"]["preferredCluster"] == "west"
    assert ctl["spec"]["vrgSpec"] == {
        "replicationType": "async", "pvcSelector": {"matchLabels": {"appname": "busybox"}},
        "s3Profiles": ["s3-profile-east", "s3-profile-west"],
        "kubeObjectProtection": {"captureInterval": "5m",
                                 "kubeObjectSelector": {"matchLabels": {"appname": "busybox"}}}}
    report = r.stdout[r.stdout.index("# ramenctl migrate report"):]
    assert "skipped: DRPlacementControl db/db-drpc: protects namespaces db-data" in report
    assert "not carried over: DRPolicy dr-policy-5m: spec.volumeGroupSnapshotClassSelector" in report
    assert "not carried over: DRPlacementControl busybox-sample/busybox-drpc: spec.failoverCluster" in report
    assert "check: DRPolicy dr-policy-5m: the DRClusters use different S3 profiles" in report
    assert "dry run: nothing applied" in report

    # From the hub itself (no OCM API there: the placement comes from the DRPC's status), applied.
    install_crds(dr.api, OUR_CRDS)
    dr.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="busybox-sample")))
    kc = str(dr.kubeconfig)
    applied = ramenctl("--hub-kubeconfig", str(hub.kubeconfig), "--apply", "--kubeconfig", f"east={kc}",
                       "--kubeconfig", f"west={kc}")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "east: DRControl busybox-sample/busybox-drpc created" in applied.stdout
    assert "west: DRControl busybox-sample/busybox-drpc exists, left as it is" in applied.stdout
    live = harness.get_drc(dr, "busybox-sample", "busybox-drpc")
    assert live["spec"]["preferredCluster"] == "west" and live["spec"]["drPolicyRef"] == {"name": "dr-policy-5m"}
    pol = dr.custom.get_cluster_custom_object(harness.GROUP, harness.VERSION, "drpolicies", "dr-policy-5m")
    assert pol["spec"]["s3CoordinationProfile"] == "s3-profile-east"


def test_migrate_input_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [")
    r = ramenctl("--from", str(tmp_path))
    assert r.returncode == 2 and "not YAML" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "cm.yaml").write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    r = ramenctl("--from", str(empty))
    assert r.returncode == 2 and "no DRPlacementControl or DRPolicy" in r.stderr
