"""Build the local environment's third-party binaries from their Go modules.

Binaries land in a cache outside the repository, keyed by component and
version, so a warm build is a few stat calls. Nothing built here is committed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"
VERSITYGW_VERSION = "v1.8.0"
# Prometheus tags its Go module v0.3xx.y for release 3.x.y; this is the newest that builds with Go 1.26.
PROMETHEUS_MODULE_VERSION = "v0.316.0"

# Ramen's manager is not served by the Go proxy: it is built from a pinned source tarball kept
# beside the project (never inside it). The commit names the cache directory.
RAMEN_COMMIT = "a78c2e37"
RAMEN_TARBALL_ENV = "RAMEN_P2P_RAMEN_TARBALL"


def cache_root() -> Path:
    base = os.environ.get("RAMEN_P2P_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ramen-p2p"
    )
    return Path(base)


def ramen_tarball() -> Path:
    """The pinned Ramen source: `$RAMEN_P2P_RAMEN_TARBALL`, else `../shared/upstream/` beside the checkout."""
    env = os.environ.get(RAMEN_TARBALL_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    name = f"ramen-{RAMEN_COMMIT}-src.tar.gz"
    for d in (here.parent / "shared" / "upstream", here.parent.parent / "shared" / "upstream"):
        if (d / name).exists():
            return d / name
    return here.parent / "shared" / "upstream" / name


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kubectl: Path
    etcd: Path
    versitygw: Path
    # Separate directories: adding them must not rebuild (or disturb) a kubernetes dir in use.
    kube_controller_manager: Path
    ramen_manager: Path
    promtool: Path

    @property
    def ramen_source(self) -> Path:
        """Where the tarball is extracted; its CRDs and go.mod are read from here."""
        return self.ramen_manager.parent / "src"

    @property
    def ramen_crds(self) -> Path:
        """Every CRD Ramen's manager needs beside its own, copied from the Go module cache."""
        return self.ramen_manager.parent / "crds"

    def missing(self) -> list[Path]:
        return [p for p in (self.kube_apiserver, self.kubectl, self.etcd, self.versitygw,
                            self.kube_controller_manager, self.ramen_manager, self.ramen_crds, self.promtool)
                if not p.exists()]


def binaries() -> Binaries:
    root = cache_root() / "bin"
    k8s = root / f"kubernetes-{KUBERNETES_VERSION}"
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kubectl=k8s / "kubectl",
        etcd=root / f"etcd-{ETCD_VERSION}" / "etcd",
        versitygw=root / f"versitygw-{VERSITYGW_VERSION}" / "versitygw",
        kube_controller_manager=root / f"kube-controller-manager-{KUBERNETES_VERSION}" / "kube-controller-manager",
        ramen_manager=root / f"ramen-{RAMEN_COMMIT}" / "manager",
        promtool=root / f"promtool-{PROMETHEUS_MODULE_VERSION}" / "promtool",
    )


def _say(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def _go(args: list[str], cwd: Path) -> None:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env["GOWORK"] = "off"
    env["CGO_ENABLED"] = "0"
    proc = subprocess.Popen(
        ["go", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    tail: list[str] = []
    started = time.monotonic()
    last_beat = started
    for line in proc.stdout:
        tail = ([*tail, line.rstrip()])[-40:]
        if line.startswith("go: downloading"):
            continue
        now = time.monotonic()
        if now - last_beat > 30:
            _say(f"  ... still running go {args[0]} ({now - started:.0f}s)")
            last_beat = now
    if proc.wait() != 0:
        raise SystemExit("go " + " ".join(args) + " failed:\n" + "\n".join(tail))


def _wrapper(name: str) -> Path:
    d = cache_root() / "wrappers" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _with_heartbeat(label: str, fn: Callable[[], None]) -> None:

    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(20):
            _say(f"  ... {label}: {time.monotonic() - started:.0f}s elapsed")

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        fn()
    finally:
        done.set()
    _say(f"{label}: done in {time.monotonic() - started:.0f}s")


def staging_replaces(kubernetes_version: str, workdir: Path) -> dict[str, str]:
    """Map each staging module of k8s.io/kubernetes to its published v0.x.y.

    The list is read from the module proxy's copy of kubernetes' go.mod, whose
    replace block points every staging module at ./staging/src/...
    """
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{kubernetes_version}"],
        cwd=workdir, check=True, capture_output=True, text=True, env={**os.environ, "GOWORK": "off"},
    )
    gomod = Path(json.loads(out.stdout)["GoMod"]).read_text()
    major_minor_patch = kubernetes_version.lstrip("v").split(".")
    staging_version = f"v0.{major_minor_patch[1]}.{major_minor_patch[2]}"
    mods = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/src/", gomod, flags=re.M)
    if not mods:
        raise SystemExit("could not find staging replaces in kubernetes go.mod")
    return {m: staging_version for m in mods}


KUBE_COMMANDS = ("kube-apiserver", "kubectl", "kube-controller-manager")


def build_kubernetes(target: Binaries, commands: tuple[str, ...] = KUBE_COMMANDS) -> None:
    """Build `commands` of k8s.io/kubernetes in one `go build`, so they share one compile."""
    wd = _wrapper(f"kubernetes-{KUBERNETES_VERSION}")
    (wd / "go.mod").write_text("module ramenp2p.local/kubebuild\n\ngo 1.24\n")
    replaces = staging_replaces(KUBERNETES_VERSION, wd)
    _say(f"kubernetes {KUBERNETES_VERSION}: {len(replaces)} staging modules pinned to their published versions")
    lines = ["module ramenp2p.local/kubebuild", "", "go 1.24", "",
             f"require k8s.io/kubernetes {KUBERNETES_VERSION}", "", "replace ("]
    lines += [f"\t{m} => {m} {v}" for m, v in sorted(replaces.items())]
    lines += [")", ""]
    (wd / "go.mod").write_text("\n".join(lines))
    # Every command stays imported, whichever are built now, so go.sum covers them all.
    (wd / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\nimport (\n"
        + "".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"\n' for c in KUBE_COMMANDS) + ")\n"
    )
    _with_heartbeat("resolving kubernetes modules", lambda: _go(["mod", "tidy"], wd))
    minor = KUBERNETES_VERSION.lstrip("v").split(".")[1]
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ldflags = " ".join(
        f"-X {pkg}.{k}={v}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for k, v in (
            ("gitVersion", KUBERNETES_VERSION), ("gitMajor", "1"), ("gitMinor", minor),
            ("gitTreeState", "clean"), ("buildDate", date),
        )
    )
    dest = {"kube-apiserver": target.kube_apiserver, "kubectl": target.kubectl,
            "kube-controller-manager": target.kube_controller_manager}
    tmp = cache_root() / "bin" / f".kubernetes-{KUBERNETES_VERSION}.partial"
    tmp.mkdir(parents=True, exist_ok=True)
    _with_heartbeat(
        f"compiling {', '.join(commands)} (several minutes when cold)",
        lambda: _go(["build", "-trimpath", "-ldflags", f"-s -w {ldflags}", "-o", str(tmp) + "/",
                     *(f"k8s.io/kubernetes/cmd/{c}" for c in commands)], wd),
    )
    for name in commands:
        dest[name].parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).rename(dest[name])
    shutil.rmtree(tmp, ignore_errors=True)


def build_ramen(target: Binaries) -> None:
    """Extract the pinned Ramen source into the cache and `go build` its manager there."""
    tarball = ramen_tarball()
    if not tarball.exists():
        raise SystemExit(f"Ramen source tarball not found at {tarball} (set ${RAMEN_TARBALL_ENV})")
    src = target.ramen_source
    if not (src / "go.mod").exists():
        _say(f"ramen {RAMEN_COMMIT}: extracting {tarball.name}")
        staging = src.with_name("src.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(tarball) as tf:
            tf.extractall(staging, filter="data")
        (top,) = list(staging.iterdir())  # the tarball holds one top directory
        shutil.rmtree(src, ignore_errors=True)
        top.rename(src)
        shutil.rmtree(staging, ignore_errors=True)
    partial = target.ramen_manager.with_suffix(".partial")
    _with_heartbeat(
        f"compiling ramen manager {RAMEN_COMMIT} (about 4 minutes when cold)",
        lambda: _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "./cmd/main.go"], src),
    )
    partial.rename(target.ramen_manager)


# The external CRDs Ramen's dr-cluster manager watches: module (version read from Ramen's go.mod)
# -> the directory of CRDs inside it.
RAMEN_CRD_MODULES = {
    "github.com/backube/volsync": "config/crd/bases",
    "github.com/csi-addons/kubernetes-csi-addons": "config/crd/bases",
    "github.com/kubernetes-csi/external-snapshotter/client/v8": "config/crd",
}


def ramen_module_versions(gomod: str) -> dict[str, str]:
    """The versions Ramen's go.mod requires of the modules whose CRDs it needs."""
    found: dict[str, str] = {}
    for module in RAMEN_CRD_MODULES:
        m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, flags=re.M)
        if m is None:
            raise SystemExit(f"Ramen's go.mod does not require {module}")
        found[module] = m.group(1)
    return found


def collect_ramen_crds(target: Binaries) -> None:
    """Copy the VolSync, csi-addons and external-snapshotter CRDs at Ramen's versions into the cache."""
    versions = ramen_module_versions((target.ramen_source / "go.mod").read_text())
    _say("ramen CRDs: " + ", ".join(f"{m}@{v}" for m, v in versions.items()))
    dirs = download_modules([f"{m}@{v}" for m, v in versions.items()], target.ramen_source)
    staging = target.ramen_crds.with_name("crds.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for module, sub in RAMEN_CRD_MODULES.items():
        for f in sorted((dirs[module] / sub).glob("*.yaml")):
            if f.name != "kustomization.yaml":
                shutil.copyfile(f, staging / f.name)
    shutil.rmtree(target.ramen_crds, ignore_errors=True)
    staging.rename(target.ramen_crds)


def download_modules(modules: list[str], cwd: Path) -> dict[str, Path]:
    """`go mod download` the given module@version list; map each module path to its directory."""
    out = subprocess.run(["go", "mod", "download", "-json", *modules], cwd=cwd, check=True,
                         capture_output=True, text=True, env={**os.environ, "GOWORK": "off"})
    dirs: dict[str, Path] = {}
    for doc in re.split(r"(?<=\})\s*(?=\{)", out.stdout.strip()):
        info = json.loads(doc)
        if info.get("Error"):
            raise SystemExit(f"go mod download {info['Path']}: {info['Error']}")
        dirs[info["Path"]] = Path(info["Dir"])
    return dirs


def _build_simple(label: str, module: str, version: str, package: str, dest: Path) -> None:
    wd = _wrapper(f"{label}-{version}")
    (wd / "go.mod").write_text(f"module ramenp2p.local/{label}build\n\ngo 1.24\n\nrequire {module} {version}\n")
    (wd / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{package}"\n')
    _with_heartbeat(f"resolving {label} modules", lambda: _go(["mod", "tidy"], wd))
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    _with_heartbeat(
        f"compiling {label} {version}",
        lambda: _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), package], wd),
    )
    partial.rename(dest)


def build(with_ramen: bool = True) -> Binaries:
    """Build what is missing; `with_ramen` False leaves out Ramen's manager and its CRDs (plain clusters)."""
    if shutil.which("go") is None:
        raise SystemExit("Go is required to build the local environment "
                         "(kube-apiserver, kube-controller-manager, etcd, versitygw, promtool, Ramen's manager)")
    target = binaries()
    started = time.monotonic()
    present = {"kube-apiserver": target.kube_apiserver, "kubectl": target.kubectl,
               "kube-controller-manager": target.kube_controller_manager}
    wanted = tuple(c for c in KUBE_COMMANDS if not present[c].exists())
    if wanted:
        build_kubernetes(target, wanted)
    else:
        _say(f"kube-apiserver + kubectl + kube-controller-manager {KUBERNETES_VERSION}: cached")
    if not target.etcd.exists():
        _build_simple("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, "go.etcd.io/etcd/server/v3", target.etcd)
    else:
        _say(f"etcd {ETCD_VERSION}: cached")
    if not target.versitygw.exists():
        _build_simple("versitygw", "github.com/versity/versitygw", VERSITYGW_VERSION,
                      "github.com/versity/versitygw/cmd/versitygw", target.versitygw)
    else:
        _say(f"versitygw {VERSITYGW_VERSION}: cached")
    if not target.promtool.exists():
        _build_simple("promtool", "github.com/prometheus/prometheus", PROMETHEUS_MODULE_VERSION,
                      "github.com/prometheus/prometheus/cmd/promtool", target.promtool)
    else:
        _say(f"promtool {PROMETHEUS_MODULE_VERSION}: cached")
    if with_ramen:
        if not target.ramen_manager.exists():
            build_ramen(target)
        else:
            _say(f"ramen manager {RAMEN_COMMIT}: cached")
        if not target.ramen_crds.exists():
            collect_ramen_crds(target)
        else:
            _say(f"ramen {RAMEN_COMMIT} external CRDs: cached")
    _say(f"binaries ready in {cache_root() / 'bin'} ({time.monotonic() - started:.1f}s)")
    return target


if __name__ == "__main__":
    build()
    sys.exit(0)
