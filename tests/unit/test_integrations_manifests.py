"""The Argo CD and Flux manifests parse and fit together (names, keys, the plugin's CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.api.drcontrol import DRControlSpec
from reconciler.integrations.appset_plugin import build_parser

ROOT = Path(__file__).resolve().parents[2]


def docs(path: str) -> dict[str, dict[str, Any]]:
    """The YAML documents of a file, by kind (each kind appears once per file here)."""
    out: dict[str, dict[str, Any]] = {}
    for d in yaml.safe_load_all((ROOT / path).read_text()):
        assert d["kind"] not in out, f"{path}: two {d['kind']}"
        out[d["kind"]] = d
    return out


def test_every_manifest_parses() -> None:
    files = sorted((ROOT / "argocd").glob("*.yaml")) + sorted((ROOT / "flux").glob("*.yaml"))
    assert len(files) >= 7
    for f in files:
        for d in yaml.safe_load_all(f.read_text()):
            assert d["apiVersion"] and d["kind"] and d["metadata"]["name"], f


def test_plugin_configmap_points_at_the_service_and_the_token_secret() -> None:
    cm = docs("argocd/plugin-configmap.yaml")["ConfigMap"]
    dep = docs("argocd/plugin-deployment.yaml")
    svc, deploy = dep["Service"], dep["Deployment"]
    port = svc["spec"]["ports"][0]["port"]
    assert cm["data"]["baseUrl"] == f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}" \
                                    f".svc.cluster.local:{port}"
    # "$<secret>:<key>", the same Secret the Deployment mounts as the token file.
    secret, key = cm["data"]["token"].removeprefix("$").split(":")
    [vol] = [v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "token"]
    assert vol["secret"]["secretName"] == secret and vol["secret"]["items"][0]["key"] == key
    assert int(cm["data"]["requestTimeout"]) > 5


def test_deployment_args_are_what_the_plugin_accepts() -> None:
    deploy = docs("argocd/plugin-deployment.yaml")["Deployment"]
    [c] = deploy["spec"]["template"]["spec"]["containers"]
    assert c["command"][-1] == "reconciler.integrations.appset_plugin"
    args = build_parser().parse_args(c["args"])
    assert args.token_file == Path("/var/run/argo/token")
    assert [a.split("=")[0] for a in args.cluster] == ["east", "west"]
    port = int(args.listen.rsplit(":", 1)[1])
    assert c["ports"][0]["containerPort"] == port
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_applicationset_uses_the_plugin_and_its_parameters() -> None:
    appset = docs("argocd/applicationset.yaml")["ApplicationSet"]
    [gen] = appset["spec"]["generators"]
    cm = docs("argocd/plugin-configmap.yaml")["ConfigMap"]
    assert gen["plugin"]["configMapRef"]["name"] == cm["metadata"]["name"]
    assert set(gen["plugin"]["input"]["parameters"]) == {"namespace", "drcontrol"}
    assert gen["plugin"]["requeueAfterSeconds"] <= 60
    tpl = appset["spec"]["template"]
    assert tpl["spec"]["destination"]["name"] == "{{.cluster}}"
    assert appset["spec"]["goTemplate"] is True


def test_rbac_grants_only_drcontrol_access_the_appset_refresh_and_the_application_list() -> None:
    role = docs("argocd/drcontrol-reader-rbac.yaml")["ClusterRole"]
    assert role["rules"] == [{"apiGroups": ["ramendr.openshift.io"], "resources": ["drcontrols"],
                              "verbs": ["get", "list", "watch", "patch"]}]
    argo = docs("argocd/plugin-deployment.yaml")
    assert argo["Role"]["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["applicationsets"],
                                      "verbs": ["list", "patch"]},
                                     {"apiGroups": ["argoproj.io"], "resources": ["applications"],
                                      "verbs": ["list"]}]
    assert argo["Role"]["metadata"]["namespace"] == argo["Deployment"]["metadata"]["namespace"]
    args = argo["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--argocd-kubeconfig=in-cluster" in args


def test_flux_app_waits_for_the_drcontrol_gate() -> None:
    gate = docs("flux/drcontrol-kustomization.yaml")["Kustomization"]
    app = docs("flux/app-kustomization.yaml")["Kustomization"]
    assert gate["apiVersion"] == app["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert app["spec"]["dependsOn"] == [{"name": gate["metadata"]["name"]}]
    assert app["metadata"]["namespace"] == gate["metadata"]["namespace"]
    [check] = gate["spec"]["healthChecks"]
    assert (check["apiVersion"], check["kind"]) == ("ramendr.openshift.io/v1alpha1", "DRControl")
    [expr] = gate["spec"]["healthCheckExprs"]
    assert (expr["apiVersion"], expr["kind"]) == (check["apiVersion"], check["kind"])
    assert {"current", "inProgress", "failed"} <= set(expr)
    assert "ReadyForApplication" in expr["current"] and "Stalled" in expr["failed"]
    # The gate must be able to time out and retry, or a cluster that becomes Primary is never noticed.
    assert gate["spec"]["timeout"] and gate["spec"]["retryInterval"]


def test_the_argocd_drcontrol_example_names_the_applicationset_and_passes_the_model() -> None:
    drc = docs("argocd/drcontrol-with-argocd.yaml")["DRControl"]
    appset = docs("argocd/applicationset.yaml")["ApplicationSet"]
    ref = DRControlSpec.from_dict(drc["spec"], "spec").application
    assert ref is not None and ref.argo_cd is not None
    assert (ref.argo_cd.application_set, ref.argo_cd.namespace) == (appset["metadata"]["name"],
                                                                    appset["metadata"]["namespace"])
    params = appset["spec"]["generators"][0]["plugin"]["input"]["parameters"]
    assert params == {"namespace": drc["metadata"]["namespace"], "drcontrol": drc["metadata"]["name"]}
