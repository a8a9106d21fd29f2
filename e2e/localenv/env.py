"""Two (or more) local Kubernetes control planes and one S3 server, as plain processes.

Each cluster is an etcd plus a kube-apiserver with its own PKI, on free
loopback ports. Optionally (`controller_manager`) a kube-controller-manager per
cluster binds PVCs to static PVs, finishes namespace deletion and collects
owner references; optionally (`ramen`, which implies it) Ramen's manager runs
per cluster in dr-cluster mode, with the CRDs it needs. No kubelet runs: pods
never start.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from e2e.localenv import build, pki, ramen
from e2e.localenv.procs import Component, StartError, free_port, log_tail

REGION = "us-east-1"
BUCKET = "ramen-p2p"


def default_root() -> Path:
    env = os.environ.get("RAMEN_P2P_LOCALENV")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2] / ".localenv"


def _say(msg: str) -> None:
    print(f"[localenv] {msg}", flush=True)


def _kubeconfig(cluster: str, server: str, p: pki.ClusterPKI) -> str:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority": str(p.ca_cert)}}],
        "users": [{"name": f"{cluster}-admin",
                   "user": {"client-certificate": str(p.admin_cert), "client-key": str(p.admin_key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-admin"}}],
        "current-context": cluster,
    }
    return json.dumps(cfg, indent=2)  # JSON is valid YAML: kubectl and the client read it.


def _xattr_supported(directory: Path) -> bool:
    probe = directory / ".xattr-probe"
    probe.write_text("")
    try:
        os.setxattr(probe, "user.ramen-p2p", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


@dataclass
class LocalEnv:
    """The state of a running local environment, persisted in `<root>/state.json`."""

    root: Path
    clusters: list[str] = field(default_factory=list)
    components: dict[str, Component] = field(default_factory=dict)
    s3: dict[str, str] = field(default_factory=dict)
    # More S3 servers (`up --s3 N`), e.g. for dr-state over a quorum: s3-2, s3-3, ... in order.
    s3_extra: list[dict[str, str]] = field(default_factory=list)
    controller_manager: bool = False
    ramen: bool = False

    # -- persistence -------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "clusters": self.clusters,
            "components": {k: c.to_dict() for k, c in self.components.items()},
            "s3": self.s3,
            "s3Extra": self.s3_extra,
            "controllerManager": self.controller_manager,
            "ramen": self.ramen,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, root: Path | None = None) -> LocalEnv:
        root = root or default_root()
        env = cls(root=root)
        if env.state_file.exists():
            data: dict[str, Any] = json.loads(env.state_file.read_text())
            env.clusters = list(data.get("clusters", []))
            env.components = {k: Component.from_dict(v) for k, v in data.get("components", {}).items()}
            env.s3 = dict(data.get("s3", {}))
            env.s3_extra = [dict(x) for x in data.get("s3Extra", [])]
            env.controller_manager = bool(data.get("controllerManager"))
            env.ramen = bool(data.get("ramen"))
        return env

    # -- accessors used by tests and the demo ------------------------------
    def kubeconfig(self, cluster: str) -> Path:
        return self.root / f"{cluster}.kubeconfig"

    def s3_config_file(self) -> Path:
        return self.root / "s3.json"

    def component(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise KeyError(f"no component {name!r}; known: {sorted(self.components)}") from None

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one server (e.g. 'east-apiserver', 's3'), keeping its data for a restart."""
        self.component(name).stop(sig)
        self.save()

    def start(self, name: str) -> None:
        """(Re)start one server with the same ports and data, and wait until it is ready."""
        self.component(name).start()
        self.save()

    def healthy(self) -> bool:
        return bool(self.components) and all(c.alive() and c.ready() for c in self.components.values())

    # -- lifecycle ---------------------------------------------------------
    def _add_cluster(self, name: str, bins: build.Binaries) -> None:
        cdir = self.root / name
        cdir.mkdir(parents=True, exist_ok=True)
        p = pki.create(cdir / "pki", name)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd = Component(
            name=f"{name}-etcd",
            argv=[
                str(bins.etcd), "--name", name, "--data-dir", str(cdir / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", f"{name}=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",  # test data only: trade durability for speed
                "--log-level", "warn",
            ],
            log=str(cdir / "etcd.log"),
            port=etcd_port,
            ready_url=f"http://127.0.0.1:{etcd_port}/health",
        )
        api = Component(
            name=f"{name}-apiserver",
            argv=[
                str(bins.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--etcd-prefix=/registry-{name}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={cdir / 'pki'}",
                f"--tls-cert-file={p.serving_cert}",
                f"--tls-private-key-file={p.serving_key}",
                f"--client-ca-file={p.ca_cert}",
                f"--service-account-key-file={p.sa_public}",
                f"--service-account-signing-key-file={p.sa_private}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--v=0",
            ],
            log=str(cdir / "apiserver.log"),
            port=api_port,
            ready_url=f"https://127.0.0.1:{api_port}/readyz",
            ca_file=str(p.ca_cert),
            client_cert=str(p.admin_cert),
            client_key=str(p.admin_key),
        )
        self.components[etcd.name] = etcd
        self.components[api.name] = api
        self.kubeconfig(name).write_text(_kubeconfig(name, f"https://127.0.0.1:{api_port}", p))
        if name not in self.clusters:
            self.clusters.append(name)

    def _add_controller_manager(self, name: str, bins: build.Binaries) -> None:
        cdir = self.root / name
        p = pki.create(cdir / "pki", name)
        port = free_port()
        self.components[f"{name}-controller-manager"] = Component(
            name=f"{name}-controller-manager",
            argv=[
                str(bins.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig(name)}",
                f"--authentication-kubeconfig={self.kubeconfig(name)}",
                f"--authorization-kubeconfig={self.kubeconfig(name)}",
                # Signs service-account tokens for the tokens controller with the key the API server checks.
                f"--service-account-private-key-file={p.sa_private}",
                f"--root-ca-file={p.ca_cert}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={cdir / 'controller-manager'}",
                # The API server has no request-header CA for it to look up (no aggregation layer).
                "--authentication-skip-lookup=true",
                "--leader-elect=false",
                "--v=1",
            ],
            log=str(cdir / "controller-manager.log"),
            port=port,
            ready_url=f"https://127.0.0.1:{port}/healthz",
            self_signed=True,
        )

    def _add_ramen(self, name: str, bins: build.Binaries) -> None:
        self.components[f"{name}-ramen"] = ramen.manager_component(
            name, bins, self.kubeconfig(name), self.root / name / "ramen.log", free_port())

    def _add_s3(self, bins: build.Binaries, name: str = "s3") -> dict[str, str]:
        sdir = self.root / name
        data = sdir / "data"
        (data / BUCKET).mkdir(parents=True, exist_ok=True)  # a directory under the root is a bucket
        port = free_port()
        access, secret = "ramen" + secrets.token_hex(4), secrets.token_hex(20)
        # Keep-alive as real S3 services do: without it versitygw closes every connection after one
        # response, and each request pays a new TCP connection (a tenth of the operator's time in
        # bench/bench_site.py).
        argv = [str(bins.versitygw), "--port", f"127.0.0.1:{port}", "--region", REGION, "--keep-alive", "posix"]
        if not _xattr_supported(data):
            (sdir / "meta").mkdir(exist_ok=True)
            argv += ["--sidecar", str(sdir / "meta")]
        argv.append(str(data))
        self.components[name] = Component(
            name=name,
            argv=argv,
            log=str(sdir / "s3.log"),
            port=port,
            ready_url=f"http://127.0.0.1:{port}/",
            # Credentials through the environment keep them out of `ps`.
            env={"ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret},
        )
        info = {
            "endpoint": f"http://127.0.0.1:{port}",
            "region": REGION,
            "bucket": BUCKET,
            "accessKeyId": access,
            "secretAccessKey": secret,
            "component": name,
        }
        if name == "s3":
            self.s3 = info
            self.s3_config_file().write_text(json.dumps(self.s3, indent=2))
            self.s3_config_file().chmod(0o600)
        return info

    def add_bucket(self, server: dict[str, str], bucket: str) -> dict[str, str]:
        """Another bucket on one of the S3 servers (a directory under its data root)."""
        (self.root / server["component"] / "data" / bucket).mkdir(parents=True, exist_ok=True)
        return {**server, "bucket": bucket}

    def up(self, clusters: list[str], controller_manager: bool = False, with_ramen: bool = False,
           s3_servers: int = 1) -> None:
        self.ramen = self.ramen or with_ramen
        bins = build.build(with_ramen=self.ramen)
        self.root.mkdir(parents=True, exist_ok=True)
        self.controller_manager = self.controller_manager or controller_manager or self.ramen
        for name in clusters:
            if name not in self.clusters:
                self._add_cluster(name, bins)
        for name in self.clusters:
            if self.controller_manager and f"{name}-controller-manager" not in self.components:
                self._add_controller_manager(name, bins)
            if self.ramen and f"{name}-ramen" not in self.components:
                self._add_ramen(name, bins)
        if "s3" not in self.components:
            self._add_s3(bins)
        while len(self.s3_extra) + 1 < s3_servers:
            self.s3_extra.append(self._add_s3(bins, f"s3-{len(self.s3_extra) + 2}"))
        self.save()
        servers = [n for c in self.clusters for n in (f"{c}-etcd", f"{c}-apiserver", f"{c}-controller-manager")]
        s3_names = ["s3", *(x["component"] for x in self.s3_extra)]
        for n in [*servers, *s3_names, *(f"{c}-ramen" for c in self.clusters)]:
            comp = self.components.get(n)
            if comp is None or (comp.alive() and comp.ready()):
                continue
            if n.endswith("-ramen"):
                cluster = n.removesuffix("-ramen")
                ramen.prepare(self.kubeconfig(cluster), bins, self.s3, comp.port)
            _say(f"starting {n} on 127.0.0.1:{comp.port}")
            t0 = time.monotonic()
            comp.start()
            self.save()
            _say(f"{n} ready in {time.monotonic() - t0:.1f}s")
        for c in self.clusters:
            _say(f"cluster {c}: kubeconfig {self.kubeconfig(c)}")
        _say(f"S3: {self.s3['endpoint']} bucket {self.s3['bucket']} (credentials in {self.s3_config_file()})")
        for x in self.s3_extra:
            _say(f"S3 {x['component']}: {x['endpoint']} bucket {x['bucket']} (credentials in {self.state_file})")

    def down(self) -> None:
        for n in reversed(list(self.components)):
            comp = self.components[n]
            if comp.alive():
                _say(f"stopping {n} (pid {comp.pid})")
            comp.stop()
        if self.root.exists():
            shutil.rmtree(self.root)
        self.clusters, self.components, self.s3, self.s3_extra = [], {}, {}, []
        self.controller_manager = self.ramen = False

    def status_lines(self) -> list[str]:
        if not self.components:
            return ["not running"]
        lines = []
        for n, c in self.components.items():
            state = "ready" if c.alive() and c.ready() else ("running, not ready" if c.alive() else "stopped")
            lines.append(f"{n:<20} pid {c.pid or '-':<8} 127.0.0.1:{c.port:<6} {state}")
        return lines


@contextlib.contextmanager
def private(clusters: list[str], root: Path) -> Iterator[LocalEnv]:
    """An environment of one's own under `root` (a benchmark's), stopped however the caller ends,
    SIGTERM included."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    env = up(clusters, root=root)
    try:
        yield env
    finally:
        env.down()
        signal.signal(signal.SIGTERM, previous)


def up(clusters: list[str], root: Path | None = None, controller_manager: bool = False,
       with_ramen: bool = False, s3_servers: int = 1) -> LocalEnv:
    """Start (or complete) the environment; `with_ramen` adds Ramen's manager and kube-controller-manager,
    `s3_servers` more S3 servers (s3-2, s3-3, ...)."""
    env = LocalEnv.load(root)
    try:
        env.up(clusters, controller_manager=controller_manager, with_ramen=with_ramen, s3_servers=s3_servers)
    except KeyboardInterrupt:
        _say("interrupted: stopping what was started")
        env.down()
        raise
    except StartError:
        env.down()
        raise
    return env


def down(root: Path | None = None) -> None:
    LocalEnv.load(root).down()


__all__ = ["LocalEnv", "StartError", "default_root", "down", "log_tail", "up"]
