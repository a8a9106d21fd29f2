"""Argo CD's CRDs from its Go module (the ApplicationSet CRD the plugin's refresher annotates)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from e2e.localenv import build

ARGO_CD = ("github.com/argoproj/argo-cd/v3", "v3.2.12")


def crd(name: str = "applicationset-crd.yaml") -> Path:
    """A CRD file of Argo CD's `manifests/crds`, from the module cache (downloaded once)."""
    wd = build._wrapper("argocd-crds")
    (wd / "go.mod").write_text("module ramenp2p.local/argocdcrds\n\ngo 1.26\n")
    module, version = ARGO_CD
    return build.download_modules([f"{module}@{version}"], wd)[module] / "manifests" / "crds" / name


def install(kubeconfig: Path, name: str = "applicationset-crd.yaml") -> None:
    kubectl = str(build.binaries().kubectl)
    path = str(crd(name))
    subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side", "--force-conflicts", "-f", path],
                   check=True, capture_output=True, text=True)
    subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "wait", "--for=condition=Established", "--timeout=60s",
                    "-f", path], check=True, capture_output=True, text=True)
