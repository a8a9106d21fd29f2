"""Argo CD's CRDs and its ApplicationSet controller, from its Go module, run against a local cluster.

`make build` builds the controller (`python -m e2e.localenv.argocd`, about 9 minutes cold on two
cores); `running()` starts it as a plain process with what it needs in its namespace. Argo CD's
application controller is not run: the tests assert on the Application objects.

The controller is built through a small main of our own around the module's
`cmd/argocd-applicationset-controller/commands` package (Argo CD's own main is a multi-call
binary); the replace directives of Argo CD's go.mod are repeated, since Go drops them from a
dependency. Cached outside git by version, like every other binary.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from e2e.localenv import build
from e2e.localenv.flux import apply_crds, published_replaces
from e2e.localenv.procs import Component, free_port

ARGO_CD = ("github.com/argoproj/argo-cd/v3", "v3.2.12")


def crd(name: str = "applicationset-crd.yaml") -> Path:
    """A CRD file of Argo CD's `manifests/crds`, from the module cache (downloaded once)."""
    wd = build._wrapper("argocd-crds")
    (wd / "go.mod").write_text("module ramenp2p.local/argocdcrds\n\ngo 1.26\n")
    module, version = ARGO_CD
    return build.download_modules([f"{module}@{version}"], wd)[module] / "manifests" / "crds" / name


def install(kubeconfig: Path, name: str = "applicationset-crd.yaml") -> None:
    apply_crds(kubeconfig, crd(name))


MAIN = """package main

import (
\t"os"

\tcommand "github.com/argoproj/argo-cd/v3/cmd/argocd-applicationset-controller/commands"
)

func main() {
\tif err := command.NewCommand().Execute(); err != nil {
\t\tos.Exit(1)
\t}
}
"""


def appset_controller() -> Path:
    """The ApplicationSet controller binary, built when missing."""
    module, version = ARGO_CD
    name = "argocd-applicationset-controller"
    dest = build.cache_root() / "bin" / f"{name}-{version}" / name
    if dest.exists():
        build._say(f"argocd-applicationset-controller {version}: cached")
        return dest
    wd = build._wrapper(f"argocd-applicationset-controller-{version}")
    module_dir = crd().parents[2]  # <module>/manifests/crds/<file>
    replaces = published_replaces((module_dir / "go.mod").read_text())
    (wd / "go.mod").write_text(f"module ramenp2p.local/appsetbuild\n\ngo 1.26\n\nrequire {module} {version}\n"
                               + "".join(f"\nreplace {r}\n" for r in replaces))
    (wd / "main.go").write_text(MAIN)
    build._say(f"argocd-applicationset-controller {version}: {len(replaces)} replace directives of its go.mod repeated")
    build._with_heartbeat("resolving Argo CD modules", lambda: build._go(["mod", "tidy", "-e"], wd))
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    argv = ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."]
    build._with_heartbeat(f"compiling argocd-applicationset-controller {version} (several minutes when cold)",
                          lambda: build._go(argv, wd))
    partial.rename(dest)
    return dest


PART_OF = {"app.kubernetes.io/part-of": "argocd"}


@dataclass(frozen=True)
class Plugin:
    """Where the ApplicationSet controller finds the plugin generator, and its token."""

    configmap: str
    base_url: str
    token: str


def _server(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text())
    return str(doc["clusters"][0]["cluster"]["server"])


def namespace_objects(namespace: str, plugin: Plugin, destinations: Mapping[str, Path]) -> list[dict[str, Any]]:
    """What the controller reads in its namespace: settings, the plugin, the project, the clusters."""
    def meta(name: str, labels: Mapping[str, str] = PART_OF) -> dict[str, Any]:
        return {"name": name, "namespace": namespace, "labels": dict(labels)}

    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("argocd-cm"), "data": {}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("argocd-secret"),
         "data": {"server.secretkey": base64.b64encode(secrets.token_bytes(32)).decode()}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta(f"{plugin.configmap}-token"),
         "stringData": {"token": plugin.token}},
        # "$<secret>:<key>" makes Argo CD read the token from that Secret (it must be part-of argocd).
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(plugin.configmap, {}),
         "data": {"baseUrl": plugin.base_url, "token": f"${plugin.configmap}-token:token", "requestTimeout": "10"}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": meta("default", {}),
         "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                  "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
    ]
    for name, kubeconfig in destinations.items():
        # Only names and addresses: the ApplicationSet controller never connects to a destination.
        objs.append({"apiVersion": "v1", "kind": "Secret",
                     "metadata": meta(f"cluster-{name}", {"argocd.argoproj.io/secret-type": "cluster"}),
                     "stringData": {"name": name, "server": _server(kubeconfig),
                                    "config": '{"tlsClientConfig":{"insecure":true}}'}})
    return objs


def _create(api: client.ApiClient, obj: dict[str, Any]) -> None:
    ns = obj["metadata"]["namespace"]
    if obj["kind"] == "ConfigMap":
        client.CoreV1Api(api).create_namespaced_config_map(ns, obj)
    elif obj["kind"] == "Secret":
        client.CoreV1Api(api).create_namespaced_secret(ns, obj)
    else:
        client.CustomObjectsApi(api).create_namespaced_custom_object("argoproj.io", "v1alpha1", ns, "appprojects",
                                                                    obj)


@contextlib.contextmanager
def running(kubeconfig: Path, namespace: str, plugin: Plugin, destinations: Mapping[str, Path],
            workdir: Path) -> Iterator[Component]:
    """Argo CD's CRDs, its namespace objects and the ApplicationSet controller on one cluster, stopped at the end.

    The controller watches ApplicationSets in `namespace` only and reaches no repo-server (the
    plugin generator needs none).
    """
    binary = appset_controller()
    for name in ("applicationset-crd.yaml", "application-crd.yaml", "appproject-crd.yaml"):
        install(kubeconfig, name)
    api = config.new_client_from_config(str(kubeconfig))
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    for obj in namespace_objects(namespace, plugin, destinations):
        _create(api, obj)
    metrics = free_port()
    comp = Component(
        name="argocd-applicationset-controller",
        argv=[str(binary), f"--kubeconfig={kubeconfig}", f"--namespace={namespace}",
              f"--applicationset-namespaces={namespace}", f"--metrics-addr=127.0.0.1:{metrics}",
              # v3.2 serves no /healthz: /metrics answering is the readiness.
              "--probe-addr=0", f"--webhook-addr=127.0.0.1:{free_port()}",
              "--argocd-repo-server=127.0.0.1:1", "--repo-server-plaintext", "--enable-scm-providers=false",
              "--logformat=text", "--loglevel=info"],
        log=str(workdir / "argocd-applicationset-controller.log"),
        port=metrics,
        ready_url=f"http://127.0.0.1:{metrics}/metrics",
        env={"KUBECONFIG": str(kubeconfig)},
    )
    comp.start()
    try:
        yield comp
    finally:
        comp.stop()
        client.CoreV1Api(api).delete_namespace(namespace)


if __name__ == "__main__":
    appset_controller()
