"""Argo CD's CRDs and its ApplicationSet controller, from its Go module.

The CRDs are used by the suite; the controller build (`python -m e2e.localenv.argocd`, 531 s cold
on two busy cores) is not part of `make build` yet and no test runs the controller.

The controller is built through a small main of our own around the module's
`cmd/argocd-applicationset-controller/commands` package (Argo CD's own main is a multi-call
binary); the replace directives of Argo CD's go.mod are repeated, since Go drops them from a
dependency. Cached outside git by version, like every other binary.
"""

from __future__ import annotations

from pathlib import Path

from e2e.localenv import build
from e2e.localenv.flux import apply_crds, published_replaces

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


if __name__ == "__main__":
    appset_controller()
