"""The real Flux and Argo CD controllers for the e2e tests, built from their Go modules and run as plain processes.

Built (`build()`, also `python -m e2e.localenv.gitops`) like build.py's binaries: cached outside git
under `cache_root()/bin/<name>-<version>/`, with progress output. A module's own `replace`
directives are dropped when it is a dependency, so each wrapper module repeats the ones of the
module's go.mod that point at published versions (Argo CD's pin the k8s.io staging modules, which
its dependencies require at v0.0.0). The CRDs come from the same module sources.

What runs, per cluster (a kubeconfig):

- Flux: source-controller (artifact storage in a directory it serves on 127.0.0.1) and
  kustomize-controller (downloads artifacts from the URL source-controller advertises). The
  source is a `Bucket` (provider generic) on the local S3 server: `FluxBucket`.
- Argo CD: the ApplicationSet controller alone, in the `argocd` namespace. It needs there the
  labelled `argocd-cm`, an `argocd-secret` with `server.secretkey` and the `default` AppProject
  (`prepare_argocd`). No repo-server runs, so only generators that need none (List, Clusters,
  Plugin) work; no application controller runs, so Applications are only objects.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from e2e.localenv import build
from e2e.localenv.procs import Component, free_port

if TYPE_CHECKING:
    from e2e.localenv.env import LocalEnv

KUSTOMIZE_CONTROLLER = ("github.com/fluxcd/kustomize-controller", "v1.9.6")
# v1.9.5 and later need a module the proxy refuses; v1.9.0 builds with Go 1.26.
SOURCE_CONTROLLER = ("github.com/fluxcd/source-controller", "v1.9.0")
ARGO_CD = ("github.com/argoproj/argo-cd/v3", "v3.2.12")
APPSET_COMMAND = "github.com/argoproj/argo-cd/v3/cmd/argocd-applicationset-controller/commands"

ARGOCD_NAMESPACE = "argocd"
ARGOCD_CRDS = ("application-crd.yaml", "applicationset-crd.yaml", "appproject-crd.yaml")
# The settings manager lists its ConfigMaps with this selector: an unlabelled argocd-cm is not seen.
ARGOCD_PART_OF = {"app.kubernetes.io/part-of": "argocd"}
CLUSTER_SECRET_LABEL = {"argocd.argoproj.io/secret-type": "cluster"}
REFRESH_ANNOTATION = "argocd.argoproj.io/application-set-refresh"
FIELD_MANAGER = "ramen-p2p-e2e"


# -- building -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GitOpsBinaries:
    kustomize_controller: Path
    source_controller: Path
    applicationset_controller: Path
    flux_crds: Path
    argocd_crds: Path

    def missing(self) -> list[Path]:
        return [p for p in (self.kustomize_controller, self.source_controller, self.applicationset_controller,
                            self.flux_crds, self.argocd_crds) if not p.exists()]


def binaries() -> GitOpsBinaries:
    """Where the binaries and CRD directories are (or will be) cached."""
    root = build.cache_root() / "bin"
    kc, sc, argo = KUSTOMIZE_CONTROLLER[1], SOURCE_CONTROLLER[1], ARGO_CD[1]
    appset = "argocd-applicationset-controller"
    return GitOpsBinaries(
        kustomize_controller=root / f"kustomize-controller-{kc}" / "kustomize-controller",
        source_controller=root / f"source-controller-{sc}" / "source-controller",
        applicationset_controller=root / f"{appset}-{argo}" / appset,
        flux_crds=root / f"flux-crds-{kc}-{sc}",
        argocd_crds=root / f"argocd-crds-{argo}",
    )


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder at a time per cached item (two test processes may start together)."""
    lock = build.cache_root() / "bin" / f".{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def module_dir(module: str, version: str) -> Path:
    """The module's source in the Go module cache (downloaded once)."""
    wd = build._wrapper("gitops-sources")
    if not (wd / "go.mod").exists():
        (wd / "go.mod").write_text("module ramenp2p.local/gitopssources\n\ngo 1.26\n")
    return build.download_modules([f"{module}@{version}"], wd)[module]


def published_replaces(gomod: Path) -> tuple[list[str], list[str]]:
    """The `replace` directives of a go.mod: (those to a published version, as go.mod lines; the old
    paths of those to a local directory, which a dependency cannot use and which Go resolves to the
    required version instead)."""
    out = subprocess.run(["go", "mod", "edit", "-json", str(gomod)], check=True, capture_output=True, text=True,
                         env={**os.environ, "GOWORK": "off"})
    published: list[str] = []
    local: list[str] = []
    for r in json.loads(out.stdout).get("Replace") or []:
        old, new = r["Old"], r["New"]
        if not new.get("Version"):
            local.append(old["Path"])
            continue
        lhs = f"{old['Path']} {old['Version']}" if old.get("Version") else old["Path"]
        published.append(f"{lhs} => {new['Path']} {new['Version']}")
    return published, local


def _build_from_module(label: str, module: str, version: str, dest: Path, command_package: str | None = None) -> None:
    """`go build` a command of `module@version` through a wrapper module in the cache.

    With `command_package`, the command is a generated main calling that package's NewCommand();
    without, the module root is the main package."""
    wd = build._wrapper(f"gitops-{label}-{version}")
    for stale in ("go.mod", "go.sum", "main.go", "tools.go"):
        (wd / stale).unlink(missing_ok=True)
    (wd / "go.mod").write_text(f"module ramenp2p.local/{label}build\n\ngo 1.26\n")
    src = build.download_modules([f"{module}@{version}"], wd)[module]
    replaces, local = published_replaces(src / "go.mod")
    build._say(f"{label} {version}: {len(replaces)} replace directives of its go.mod repeated"
               + (f", {len(local)} to local directories left out ({', '.join(local)})" if local else ""))
    lines = [f"module ramenp2p.local/{label}build", "", "go 1.26", "", f"require {module} {version}", ""]
    if replaces:
        lines += ["replace (", *(f"\t{r}" for r in replaces), ")", ""]
    (wd / "go.mod").write_text("\n".join(lines))
    if command_package:
        (wd / "main.go").write_text(
            "package main\n\nimport (\n\t\"os\"\n\n"
            f"\tcommand \"{command_package}\"\n)\n\n"
            "func main() {\n\tif err := command.NewCommand().Execute(); err != nil {\n\t\tos.Exit(1)\n\t}\n}\n")
        target = "."
    else:
        (wd / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{module}"\n')
        target = module
    # -e: tidy also wants the go.mod of modules only the dependency's own tests use, and the proxy
    # refuses one of source-controller's; the build does not need them.
    build._with_heartbeat(f"resolving {label} modules", lambda: build._go(["mod", "tidy", "-e"], wd))
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A private partial name: another builder of the same binary must not write into our file.
    partial = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    argv = ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), target]
    build._with_heartbeat(f"compiling {label} {version} (minutes when cold)", lambda: build._go(argv, wd))
    partial.rename(dest)


def _collect(dest: Path, files: list[Path]) -> None:
    staging = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, staging / f.name)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def _flux_crd_files() -> list[Path]:
    return [f for module, version in (KUSTOMIZE_CONTROLLER, SOURCE_CONTROLLER)
            for f in sorted((module_dir(module, version) / "config" / "crd" / "bases").glob("*.yaml"))
            if f.name != "kustomization.yaml"]


def _argocd_crd_files() -> list[Path]:
    crds = module_dir(*ARGO_CD) / "manifests" / "crds"
    return [crds / name for name in ARGOCD_CRDS]


def build_gitops(flux: bool = True, argocd: bool = True) -> GitOpsBinaries:
    """Build what is missing of the Flux controllers (`flux`) and the ApplicationSet controller (`argocd`),
    and collect their CRDs; return where everything is."""
    if shutil.which("go") is None:
        raise SystemExit("Go is required to build the Flux and Argo CD controllers")
    target = binaries()
    started = time.monotonic()
    items: list[tuple[str, str, Path, Callable[[], None]]] = []
    if flux:
        items += [
            ("kustomize-controller", KUSTOMIZE_CONTROLLER[1], target.kustomize_controller,
             lambda: _build_from_module("kustomize-controller", *KUSTOMIZE_CONTROLLER, target.kustomize_controller)),
            ("source-controller", SOURCE_CONTROLLER[1], target.source_controller,
             lambda: _build_from_module("source-controller", *SOURCE_CONTROLLER, target.source_controller)),
            ("flux CRDs", f"{KUSTOMIZE_CONTROLLER[1]}/{SOURCE_CONTROLLER[1]}", target.flux_crds,
             lambda: _collect(target.flux_crds, _flux_crd_files())),
        ]
    if argocd:
        items += [
            ("argocd-applicationset-controller", ARGO_CD[1], target.applicationset_controller,
             lambda: _build_from_module("argocd-applicationset-controller", *ARGO_CD,
                                        target.applicationset_controller, command_package=APPSET_COMMAND)),
            ("argocd CRDs", ARGO_CD[1], target.argocd_crds, lambda: _collect(target.argocd_crds, _argocd_crd_files())),
        ]
    for label, version, dest, make in items:
        if dest.exists():
            build._say(f"{label} {version}: cached")
            continue
        with _locked(dest.relative_to(build.cache_root() / "bin").as_posix().replace("/", "_")):
            if dest.exists():  # built by another process while we waited
                build._say(f"{label} {version}: cached")
                continue
            t0 = time.monotonic()
            make()
            build._say(f"{label} {version}: ready in {time.monotonic() - t0:.0f}s")
    build._say(f"gitops binaries ready in {build.cache_root() / 'bin'} ({time.monotonic() - started:.1f}s)")
    return target


# -- applying objects ---------------------------------------------------------------------------

def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    """Run the environment's kubectl against one cluster; raise with its stderr on failure."""
    proc = subprocess.run([str(build.binaries().kubectl), f"--kubeconfig={kubeconfig}", *args], input=stdin,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def apply(kubeconfig: Path, objects: list[dict[str, Any]]) -> None:
    """Server-side apply of objects (any kinds) to one cluster."""
    if objects:
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}",
                "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def delete(kubeconfig: Path, objects: list[dict[str, Any]], wait: bool = False) -> None:
    """Delete objects from one cluster (absent ones are fine); `wait` for them to be gone."""
    if objects:
        kubectl(kubeconfig, "delete", "--ignore-not-found", f"--wait={str(wait).lower()}", "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def _install_crds(kubeconfig: Path, directory: Path) -> None:
    # Server-side: the ApplicationSet CRD (1 MB) is larger than the last-applied annotation may be.
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}",
            "-f", str(directory))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(directory))


def install_flux_crds(kubeconfig: Path, bins: GitOpsBinaries | None = None) -> None:
    """Flux's source and kustomize CRDs on one cluster, established when this returns."""
    _install_crds(kubeconfig, (bins or build_gitops(argocd=False)).flux_crds)


def install_argocd_crds(kubeconfig: Path, bins: GitOpsBinaries | None = None) -> None:
    """Argo CD's Application, ApplicationSet and AppProject CRDs on one cluster."""
    _install_crds(kubeconfig, (bins or build_gitops(flux=False)).argocd_crds)


def _distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def stop(components: list[Component]) -> None:
    """Stop the given controllers (each exactly the process it started), last started first."""
    for comp in reversed(components):
        comp.stop()


# -- Flux ---------------------------------------------------------------------------------------

def flux_components(kubeconfig: Path, workdir: Path, cluster: str = "flux",
                    bins: GitOpsBinaries | None = None) -> list[Component]:
    """source-controller and kustomize-controller for one cluster, not started; logs and artifacts
    go to `workdir`, names are prefixed with `cluster`."""
    bins = bins or binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / f"{cluster}-source-artifacts"
    storage.mkdir(exist_ok=True)
    storage_port, *ports = _distinct_ports(5)
    common = [
        # One replica per cluster: nothing to elect, and no Lease objects to wait for.
        "--enable-leader-election=false",
        "--watch-all-namespaces=true",
        "--log-encoding=console",
        "--log-level=info",
        # Empty: no notification-controller runs; events go to the API server only.
        "--events-addr=",
    ]
    specs = [
        ("source-controller", bins.source_controller, [
            f"--storage-path={storage}",
            f"--storage-addr=127.0.0.1:{storage_port}",
            # kustomize-controller downloads artifacts from the URL built from this address.
            f"--storage-adv-addr=127.0.0.1:{storage_port}",
        ]),
        ("kustomize-controller", bins.kustomize_controller, []),
    ]
    comps = []
    for (name, binary, extra), (metrics, health) in zip(specs, (ports[0:2], ports[2:4]), strict=True):
        comps.append(Component(
            name=f"{cluster}-{name}",
            argv=[str(binary), *common, f"--metrics-addr=127.0.0.1:{metrics}",
                  f"--health-addr=127.0.0.1:{health}", *extra],
            log=str(workdir / f"{cluster}-{name}.log"),
            port=health,
            ready_url=f"http://127.0.0.1:{health}/readyz",
            # Flux's binaries take no --kubeconfig; controller-runtime reads KUBECONFIG out of a cluster.
            env={"KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": "flux-system"},
        ))
    return comps


def start_flux(kubeconfig: Path, workdir: Path, cluster: str = "flux", bins: GitOpsBinaries | None = None,
               install_crds: bool = True) -> list[Component]:
    """Flux's CRDs installed (unless `install_crds` is False) and both controllers running and ready on
    one cluster; stop them with `stop(components)`."""
    bins = bins or build_gitops(argocd=False)
    if install_crds:
        install_flux_crds(kubeconfig, bins)
    started: list[Component] = []
    try:
        for comp in flux_components(kubeconfig, workdir, cluster, bins):
            comp.start()
            started.append(comp)
    except BaseException:
        stop(started)
        raise
    return started


@contextlib.contextmanager
def flux_running(kubeconfigs: Mapping[str, Path], workdir: Path) -> Iterator[dict[str, list[Component]]]:
    """Flux on every cluster (name -> kubeconfig) for the duration of the block."""
    bins = build_gitops(argocd=False)
    running: dict[str, list[Component]] = {}
    try:
        for cluster, kubeconfig in kubeconfigs.items():
            running[cluster] = start_flux(kubeconfig, workdir, cluster, bins)
        yield running
    finally:
        for comps in running.values():
            stop(comps)


@dataclass(frozen=True)
class FluxBucket:
    """A Flux `Bucket` source on a local S3 server, and the bucket it reads."""

    name: str
    # The S3 server and bucket: endpoint, region, bucket, accessKeyId, secretAccessKey (as env.s3).
    s3: dict[str, str]
    interval: str = "1m"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-s3"

    def objects(self, namespace: str) -> list[dict[str, Any]]:
        """The credentials Secret and the Bucket, to create in `namespace` of each cluster."""
        return [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": self.secret_name, "namespace": namespace},
             "stringData": {"accesskey": self.s3["accessKeyId"], "secretkey": self.s3["secretAccessKey"]}},
            {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket",
             "metadata": {"name": self.name, "namespace": namespace},
             "spec": {"provider": "generic", "bucketName": self.s3["bucket"],
                      # host:port; `insecure` makes the client speak plain HTTP to it.
                      "endpoint": self.s3["endpoint"].removeprefix("http://"), "insecure": True,
                      "region": self.s3["region"], "interval": self.interval, "timeout": "30s",
                      "secretRef": {"name": self.secret_name}}},
        ]

    def upload(self, directory: Path, prefix: str = "") -> list[str]:
        """Make the bucket (under `prefix`) hold exactly the files of `directory`; return the keys written."""
        return upload_manifests(self.s3, directory, prefix)

    def kustomization(self, name: str, namespace: str, path: str = "./", prune: bool = True,
                      interval: str = "1m", **spec: Any) -> dict[str, Any]:
        """A Kustomization applying `path` of this bucket; `spec` adds fields (targetNamespace, deletionPolicy...)."""
        return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"interval": interval, "path": path, "prune": prune,
                         "sourceRef": {"kind": "Bucket", "name": self.name}, **spec}}


def flux_bucket(env: LocalEnv, bucket: str, name: str | None = None, interval: str = "1m") -> FluxBucket:
    """A new bucket `bucket` on the environment's S3 server and its Flux source `name` (default: `bucket`)."""
    return FluxBucket(name=name or bucket, s3=env.add_bucket(env.s3, bucket), interval=interval)


def upload_manifests(s3: dict[str, str], directory: Path, prefix: str = "") -> list[str]:
    """Upload every file under `directory` to the bucket of `s3` (keys `prefix` + relative path), and
    delete the keys under `prefix` that no longer have a file, so a removed manifest is pruned."""
    from e2e.localenv.clients import s3_client

    client = s3_client(s3)
    bucket = s3["bucket"]
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    wanted = {prefix + f.relative_to(directory).as_posix(): f for f in sorted(directory.rglob("*")) if f.is_file()}
    for key, f in wanted.items():
        client.put_object(Bucket=bucket, Key=key, Body=f.read_bytes())
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"] not in wanted:
                client.delete_object(Bucket=bucket, Key=obj["Key"])
    return list(wanted)


# -- Argo CD ------------------------------------------------------------------------------------

def argocd_base_objects(namespace: str = ARGOCD_NAMESPACE) -> list[dict[str, Any]]:
    """What the ApplicationSet controller reads in its namespace, beside its CRDs:

    - `argocd-cm`, labelled part-of argocd (in-cluster destination allowed by default);
    - `argocd-secret` with `server.secretkey`: without it the settings are "incomplete" and the
      webhook handler is not created;
    - the `default` AppProject: every generated Application's project must exist, or it is not created.
    """
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "argocd-cm", "namespace": namespace, "labels": ARGOCD_PART_OF}, "data": {}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "argocd-secret", "namespace": namespace, "labels": ARGOCD_PART_OF},
         "stringData": {"server.secretkey": secrets.token_hex(16)}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
         "metadata": {"name": "default", "namespace": namespace},
         "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                  "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
    ]


def prepare_argocd(kubeconfig: Path, namespace: str = ARGOCD_NAMESPACE, bins: GitOpsBinaries | None = None) -> None:
    """Argo CD's CRDs and the objects of `argocd_base_objects` on one cluster."""
    install_argocd_crds(kubeconfig, bins)
    objs = argocd_base_objects(namespace)
    apply(kubeconfig, objs[:1])  # the namespace first: a List is applied in one pass
    apply(kubeconfig, objs[1:])


def plugin_objects(name: str, base_url: str, token: str, namespace: str = ARGOCD_NAMESPACE,
                   request_timeout: int | None = None) -> list[dict[str, Any]]:
    """The ConfigMap an ApplicationSet's plugin generator names (`configMapRef: {name: <name>}`), and the
    Secret of its token. The ConfigMap's `token` is `$<secret>:<key>`; the controller sends
    `Authorization: Bearer <value>` with each POST to `<baseUrl>/api/v1/getparams.execute`."""
    data = {"baseUrl": base_url, "token": f"${name}-token:token"}
    if request_timeout is not None:
        data["requestTimeout"] = str(request_timeout)
    return [
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": f"{name}-token", "namespace": namespace, "labels": ARGOCD_PART_OF},
         "stringData": {"token": token}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data},
    ]


def _file_or_data(entry: Mapping[str, Any], key: str) -> str:
    """base64 of a kubeconfig credential, whether given inline (`<key>-data`) or as a file path."""
    if entry.get(f"{key}-data"):
        return str(entry[f"{key}-data"])
    return base64.b64encode(Path(entry[key]).read_bytes()).decode()


def cluster_secret(name: str, kubeconfig: Path, namespace: str = ARGOCD_NAMESPACE,
                   server: str | None = None) -> dict[str, Any]:
    """An Argo CD cluster Secret for a local cluster, from its kubeconfig (client-certificate auth).

    Applications may then name it as `destination.name`, and the Clusters generator lists it."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    tls = {"caData": _file_or_data(cluster, "certificate-authority"),
           "certData": _file_or_data(user, "client-certificate"),
           "keyData": _file_or_data(user, "client-key")}
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"cluster-{name}", "namespace": namespace, "labels": CLUSTER_SECRET_LABEL},
            "stringData": {"name": name, "server": server or cluster["server"],
                           "config": json.dumps({"tlsClientConfig": tls})}}


def appset_component(kubeconfig: Path, workdir: Path, cluster: str = "argocd", namespace: str = ARGOCD_NAMESPACE,
                     bins: GitOpsBinaries | None = None) -> Component:
    """The ApplicationSet controller for one cluster, not started; its log goes to `workdir`."""
    bins = bins or binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    metrics, webhook, repo = _distinct_ports(3)
    return Component(
        name=f"{cluster}-applicationset-controller",
        argv=[str(bins.applicationset_controller),
              f"--kubeconfig={kubeconfig}",
              # Its Argo CD namespace: argocd-cm, argocd-secret, AppProjects, cluster and plugin
              # Secrets and ConfigMaps are read there, and only ApplicationSets there are reconciled.
              f"--namespace={namespace}",
              "--enable-leader-election=false",
              f"--metrics-addr=127.0.0.1:{metrics}",
              # v3.2.12 registers no health checks: its probe server would answer 404 to everything.
              "--probe-addr=0",
              f"--webhook-addr=127.0.0.1:{webhook}",
              # No repo-server runs: a Git generator fails at once on a closed loopback port instead
              # of resolving `argocd-repo-server`; connections are made only when one is used.
              f"--argocd-repo-server=127.0.0.1:{repo}", "--repo-server-plaintext",
              "--logformat=text", "--loglevel=info"],
        log=str(workdir / f"{cluster}-applicationset-controller.log"),
        port=metrics,
        # Served once the manager starts, after the settings informers have synced.
        ready_url=f"http://127.0.0.1:{metrics}/metrics",
        # Its manager's config comes from controller-runtime, which reads KUBECONFIG, not --kubeconfig.
        env={"KUBECONFIG": str(kubeconfig)},
    )


def start_appset(kubeconfig: Path, workdir: Path, cluster: str = "argocd", namespace: str = ARGOCD_NAMESPACE,
                 bins: GitOpsBinaries | None = None, prepare: bool = True) -> Component:
    """The ApplicationSet controller running and ready against one cluster (after `prepare_argocd`
    unless `prepare` is False); stop it with `stop([component])`."""
    bins = bins or build_gitops(flux=False)
    if prepare:
        prepare_argocd(kubeconfig, namespace, bins)
    comp = appset_component(kubeconfig, workdir, cluster, namespace, bins)
    comp.start()
    return comp


@contextlib.contextmanager
def appset_running(kubeconfig: Path, workdir: Path, cluster: str = "argocd",
                   namespace: str = ARGOCD_NAMESPACE) -> Iterator[Component]:
    """The ApplicationSet controller for the duration of the block."""
    comp = start_appset(kubeconfig, workdir, cluster, namespace)
    try:
        yield comp
    finally:
        comp.stop()


def refresh_appset(kubeconfig: Path, name: str, namespace: str = ARGOCD_NAMESPACE) -> None:
    """Ask the controller to reconcile an ApplicationSet now (so a plugin generator is asked again):
    it requeues when this annotation appears, and removes it at the end of that reconcile."""
    kubectl(kubeconfig, "annotate", "--overwrite", "-n", namespace, "applicationsets.argoproj.io", name,
            f"{REFRESH_ANNOTATION}=true")


if __name__ == "__main__":
    build_gitops()
    sys.exit(0)
