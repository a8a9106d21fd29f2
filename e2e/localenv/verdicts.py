"""Upstream code's verdict on DRControl objects: kstatus, Flux and Argo CD, through their own Go code.

Two small Go programs of ours (`e2e/verdicts/`) call the upstream libraries; they are built here
from the same modules the real controllers are built from, so they judge with the code that runs:

- `kstatus-verdicts`: sigs.k8s.io/cli-utils kstatus `Compute`, Flux's fork of it, and Flux's CEL
  status evaluator, in the module graph of kustomize-controller (plus sigs.k8s.io/cli-utils).
- `argocd-verdicts`: Argo CD's settings manager reading argocd-cm from a real API server and
  gitops-engine's `GetResourceHealth` running the Lua through Argo CD's VM, in the module graph of
  the ApplicationSet controller build.

Each binary is cached outside git under a name holding the upstream versions and a hash of our Go
source, so a changed program is rebuilt and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from e2e.localenv import build
from e2e.localenv.argocd import ARGO_CD
from e2e.localenv.argocd import crd as argocd_crd
from e2e.localenv.flux import KUSTOMIZE_CONTROLLER, published_replaces

SOURCES = Path(__file__).resolve().parents[1] / "verdicts"
CLI_UTILS = ("sigs.k8s.io/cli-utils", "v0.37.2")

Verdicts = dict[str, dict[str, Any]]


def _digest(program: str) -> str:
    return hashlib.sha256((SOURCES / program / "main.go").read_bytes()).hexdigest()[:10]


def _build(label: str, program: str, requires: list[tuple[str, str]], replaces: list[str], dest: Path,
           pin: str = "") -> Path:
    """Build `e2e/verdicts/<program>` in a module requiring `requires`; `pin`, a main package, keeps
    its module (and so its dependency versions) in the graph although the program imports none of it."""
    if dest.exists():
        build._say(f"{label}: cached")
        return dest
    wd = build._wrapper(label)
    shutil.rmtree(wd / "cmd", ignore_errors=True)
    (wd / "cmd").mkdir()
    shutil.copyfile(SOURCES / program / "main.go", wd / "cmd" / "main.go")
    if pin:
        (wd / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{pin}"\n')
    (wd / "go.mod").write_text(
        f"module ramenp2p.local/{label}\n\ngo 1.26\n\n"
        + "".join(f"require {m} {v}\n" for m, v in requires)
        + "".join(f"\nreplace {r}\n" for r in replaces))
    build._with_heartbeat(f"resolving {label} modules", lambda: build._go(["mod", "tidy", "-e"], wd))
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    argv = ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "./cmd"]
    build._with_heartbeat(f"compiling {label}", lambda: build._go(argv, wd))
    partial.rename(dest)
    return dest


def kstatus_program() -> Path:
    module, version = KUSTOMIZE_CONTROLLER
    wd = build._wrapper("kstatus-verdicts-modules")
    (wd / "go.mod").write_text("module ramenp2p.local/kstatusmodules\n\ngo 1.26\n")
    gomod = build.download_modules([f"{module}@{version}"], wd)[module] / "go.mod"
    name = f"kstatus-verdicts-{version}-{CLI_UTILS[1]}-{_digest('kstatus')}"
    return _build(name, "kstatus", [(module, version), CLI_UTILS], published_replaces(gomod.read_text()),
                  build.cache_root() / "bin" / name / "kstatus-verdicts", pin=module)


def argocd_program() -> Path:
    module, version = ARGO_CD
    gomod = argocd_crd().parents[2] / "go.mod"  # <module>/manifests/crds/<file>
    name = f"argocd-verdicts-{version}-{_digest('argocd')}"
    return _build(name, "argocd", [(module, version)], published_replaces(gomod.read_text()),
                  build.cache_root() / "bin" / name / "argocd-verdicts")


def _run(argv: list[str], payload: Any) -> Any:
    out = subprocess.run(argv, input=json.dumps(payload), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def kstatus_verdicts(objects: dict[str, dict[str, Any]], health_check_exprs: list[dict[str, Any]]) -> Verdicts:
    """{name: {"kstatus": v, "fluxKstatus": v, "fluxCEL": v}}, each v {"status", "message"} or {"error"}."""
    return dict(_run([str(kstatus_program())], {"healthCheckExprs": health_check_exprs, "objects": objects}))


def argocd_verdicts(objects: dict[str, dict[str, Any]], kubeconfig: Path, namespace: str) -> Verdicts:
    """{name: {"status", "message"}} from Argo CD's code, with argocd-cm read from `namespace`."""
    return dict(_run([str(argocd_program()), f"--kubeconfig={kubeconfig}", f"--namespace={namespace}"], objects))


if __name__ == "__main__":
    kstatus_program()
    argocd_program()
