"""Flux's source-controller and kustomize-controller, built from their Go modules and run against a local cluster.

Built like the other binaries (`build.py`: cached outside git by version, with progress). A
module's own `replace` directives are dropped when it is a dependency, so the wrapper module
repeats the ones that point at published versions. The CRDs come from the same module sources.

The controllers run as plain processes with a kubeconfig: no leader election, their own
metrics and health ports, source-controller's artifact storage in a directory it serves over
HTTP on 127.0.0.1 (kustomize-controller downloads artifacts from the URL it advertises).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from e2e.localenv import build
from e2e.localenv.procs import Component, free_port

KUSTOMIZE_CONTROLLER = ("github.com/fluxcd/kustomize-controller", "v1.9.6")
# v1.9.5 and later need a module the proxy does not serve.
SOURCE_CONTROLLER = ("github.com/fluxcd/source-controller", "v1.9.0")


@dataclass(frozen=True)
class FluxBinaries:
    kustomize_controller: Path
    source_controller: Path
    crds: Path


def binaries() -> FluxBinaries:
    root = build.cache_root() / "bin"
    return FluxBinaries(
        kustomize_controller=root / f"kustomize-controller-{KUSTOMIZE_CONTROLLER[1]}" / "kustomize-controller",
        source_controller=root / f"source-controller-{SOURCE_CONTROLLER[1]}" / "source-controller",
        crds=root / f"flux-crds-{KUSTOMIZE_CONTROLLER[1]}-{SOURCE_CONTROLLER[1]}",
    )


def published_replaces(gomod: str) -> list[str]:
    """The `replace` lines of a go.mod that point at a published version (not a local directory)."""
    out: list[str] = []
    block = False
    for raw in gomod.splitlines():
        line = raw.split("//")[0].strip()
        if line == "replace (":
            block = True
            continue
        if block and line == ")":
            block = False
            continue
        if line.startswith("replace "):
            line = line[len("replace "):].strip()
        elif not block:
            continue
        m = re.fullmatch(r"(\S+)(?:\s+\S+)?\s*=>\s*(\S+)\s+(v\S+)", line)
        if m and not m.group(2).startswith("."):
            out.append(f"{m.group(1)} => {m.group(2)} {m.group(3)}")
    return out


def _build_controller(label: str, module: str, version: str, dest: Path) -> None:
    wd = build._wrapper(f"{label}-{version}")
    base = f"module ramenp2p.local/{label}build\n\ngo 1.26\n\nrequire {module} {version}\n"
    (wd / "go.mod").write_text(base)
    dirs = build.download_modules([f"{module}@{version}"], wd)
    replaces = published_replaces((dirs[module] / "go.mod").read_text())
    (wd / "go.mod").write_text(base + "".join(f"\nreplace {r}\n" for r in replaces))
    (wd / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{module}"\n')
    build._say(f"{label} {version}: {len(replaces)} replace directives of its go.mod repeated")
    # -e: tidy also walks the module's own tests, and one of source-controller's test servers is
    # not served by the proxy; the build does not need it.
    build._with_heartbeat(f"resolving {label} modules", lambda: build._go(["mod", "tidy", "-e"], wd))
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    argv = ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), module]
    build._with_heartbeat(f"compiling {label} {version} (several minutes when cold)", lambda: build._go(argv, wd))
    partial.rename(dest)


def _collect_crds(target: FluxBinaries) -> None:
    wd = build._wrapper("flux-crds")
    (wd / "go.mod").write_text("module ramenp2p.local/fluxcrds\n\ngo 1.26\n")
    dirs = build.download_modules([f"{m}@{v}" for m, v in (KUSTOMIZE_CONTROLLER, SOURCE_CONTROLLER)], wd)
    staging = target.crds.with_name(target.crds.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for module, _ in (KUSTOMIZE_CONTROLLER, SOURCE_CONTROLLER):
        for f in sorted((dirs[module] / "config" / "crd" / "bases").glob("*.yaml")):
            shutil.copyfile(f, staging / f.name)
    shutil.rmtree(target.crds, ignore_errors=True)
    staging.rename(target.crds)


def build_flux() -> FluxBinaries:
    """Build (or find cached) both controllers and their CRDs."""
    target = binaries()
    for label, (module, version), dest in (("kustomize-controller", KUSTOMIZE_CONTROLLER, target.kustomize_controller),
                                           ("source-controller", SOURCE_CONTROLLER, target.source_controller)):
        if dest.exists():
            build._say(f"{label} {version}: cached")
        else:
            _build_controller(label, module, version, dest)
    if not target.crds.exists():
        _collect_crds(target)
    return target


def apply_crds(kubeconfig: Path, path: Path, timeout: float = 60.0) -> None:
    """Server-side apply CRD manifests and wait until each is Established."""
    kubectl = [str(build.binaries().kubectl), f"--kubeconfig={kubeconfig}"]
    subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(path)], check=True,
                   capture_output=True, text=True)
    deadline = time.monotonic() + timeout
    while True:
        # Right after the apply a CRD may have no conditions yet, and `kubectl wait` fails on that
        # instead of waiting: try again until it succeeds or the time is up.
        out = subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=10s", "-f", str(path)],
                             capture_output=True, text=True)
        if out.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"CRDs in {path} not established: {out.stderr.strip()}")
        time.sleep(0.5)


def install_crds(kubeconfig: Path, target: FluxBinaries) -> None:
    apply_crds(kubeconfig, target.crds)


def controllers(cluster: str, kubeconfig: Path, workdir: Path, target: FluxBinaries) -> list[Component]:
    """source-controller and kustomize-controller for one cluster (not started)."""
    storage = workdir / f"{cluster}-artifacts"
    storage.mkdir(parents=True, exist_ok=True)
    comps = []
    storage_port = free_port()
    for name, binary, extra in (
        ("source-controller", target.source_controller,
         [f"--storage-path={storage}", f"--storage-addr=127.0.0.1:{storage_port}",
          f"--storage-adv-addr=127.0.0.1:{storage_port}"]),
        ("kustomize-controller", target.kustomize_controller, []),
    ):
        health = free_port()
        comps.append(Component(
            name=f"{cluster}-{name}",
            argv=[str(binary), "--enable-leader-election=false",
                  f"--metrics-addr=127.0.0.1:{free_port()}", f"--health-addr=127.0.0.1:{health}",
                  "--watch-all-namespaces=true", "--log-level=info", "--concurrent=4", *extra],
            log=str(workdir / f"{cluster}-{name}.log"),
            port=health,
            ready_url=f"http://127.0.0.1:{health}/readyz",
            # controller-runtime reads KUBECONFIG when no in-cluster config exists.
            env={"KUBECONFIG": str(kubeconfig)},
        ))
    return comps


@dataclass(frozen=True)
class BucketSource:
    """A Flux `Bucket` on a local S3 server: its name in the clusters and how to reach it."""

    name: str
    bucket: str
    endpoint: str
    region: str
    access_key: str
    secret_key: str

    def objects(self, namespace: str) -> list[dict[str, object]]:
        """The Secret and the Bucket to create in `namespace` on each cluster."""
        return [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{self.name}-s3", "namespace": namespace},
             "stringData": {"accesskey": self.access_key, "secretkey": self.secret_key}},
            {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket",
             "metadata": {"name": self.name, "namespace": namespace},
             "spec": {"provider": "generic", "bucketName": self.bucket,
                      "endpoint": self.endpoint.removeprefix("http://"), "insecure": True, "region": self.region,
                      "interval": "1m", "timeout": "30s", "secretRef": {"name": f"{self.name}-s3"}}},
        ]


@contextlib.contextmanager
def running(kubeconfigs: Mapping[str, Path], workdir: Path) -> Iterator[FluxBinaries]:
    """Flux's CRDs installed and both controllers running on every cluster, stopped at the end."""
    target = build_flux()
    started: list[Component] = []
    try:
        for cluster, kubeconfig in kubeconfigs.items():
            install_crds(kubeconfig, target)
            for comp in controllers(cluster, kubeconfig, workdir, target):
                comp.start()
                started.append(comp)
        yield target
    finally:
        for comp in started:
            comp.stop()


if __name__ == "__main__":
    build_flux()
