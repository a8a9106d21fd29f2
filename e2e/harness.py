"""Two-cluster DR set-ups for scenarios and the demo: configuration, operators and VRG simulators as processes.

Everything here talks to real API servers and a real S3 server. Operators and
simulators run as separate OS processes so they can be killed with SIGKILL.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.crdinstall import EXTERNAL_CRDS, OUR_CRDS, install_crds
from e2e.localenv.clients import Cluster
from reconciler.config import CONFIG_KEY, CONFIGMAP_NAME, P2P_CONFIG_KEY, P2P_CONFIGMAP_NAME

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GROUP, VERSION = "ramendr.openshift.io", "v1alpha1"
OPERATOR_NS = "ramen-system"
PROFILE = "s3-profile-shared"
POLICY = "dr-policy-east-west"


def load_example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


def _upsert(create: Callable[[], Any], replace: Callable[[str], Any], read: Callable[[], Any]) -> None:
    try:
        create()
    except ApiException as e:
        if e.status != 409:
            raise
        live = read()
        rv = live["metadata"]["resourceVersion"] if isinstance(live, dict) else live.metadata.resource_version
        replace(rv)


QUORUM_PROFILES = ("s3-profile-2", "s3-profile-3")
VOLSYNC_SEED_SECRET = "volsync-seed"


def configure_cluster(c: Cluster, s3: dict[str, str], key_prefix: str = "", scheduling_interval: str = "1m",
                      auto_failover_after: str | None = None, peer_kubeconfigs: dict[str, Path] | None = None,
                      hmac_key: bytes | None = None, test_crds: bool = True,
                      quorum: list[dict[str, str]] | None = None, volsync_seed: bytes | None = None,
                      policy_quorum: bool = True) -> None:
    """CRDs, the operator's namespace, S3 Secret and ConfigMap, both DRClusters and the DRPolicy.

    `test_crds` False leaves out the test-only VRG and NetworkFence CRDs: beside Ramen's real
    manager, its own CRDs (installed by the local environment) are the ones in force.

    `peer_kubeconfigs` (cluster name -> kubeconfig) gives those DRClusters a peerEndpoint, with the
    kubeconfig in a Secret, so this cluster's operator can nudge theirs. `hmac_key` makes the
    operator sign every coordination object and refuse unsigned ones. `quorum` (two more S3
    servers) replicates dr-state over `s3` and them (DRPolicy spec.s3CoordinationQuorum); with
    `policy_quorum` False their profiles are configured but the DRPolicy names one store (a pair
    about to move to three).
    `volsync_seed` is the Secret each app's VolSync PSK is derived from (the same on both clusters).
    """
    install_crds(c.api, OUR_CRDS + (EXTERNAL_CRDS if test_crds else []))
    try:
        c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NS)))
    except ApiException as e:
        if e.status != 409:
            raise
    put_secret(c, "s3-secret", {"AWS_ACCESS_KEY_ID": s3["accessKeyId"].encode(),
                                "AWS_SECRET_ACCESS_KEY": s3["secretAccessKey"].encode()})
    ramen_config: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RamenConfig",
        "s3StoreProfiles": [{
            "s3ProfileName": PROFILE,
            "s3Bucket": s3["bucket"],
            "s3CompatibleEndpoint": s3["endpoint"],
            "s3Region": s3["region"],
            "s3SecretRef": {"name": "s3-secret", "namespace": OPERATOR_NS},
        }],
    }
    for name, extra in zip(QUORUM_PROFILES, quorum or [], strict=False):
        put_secret(c, f"{name}-secret", {"AWS_ACCESS_KEY_ID": extra["accessKeyId"].encode(),
                                         "AWS_SECRET_ACCESS_KEY": extra["secretAccessKey"].encode()})
        ramen_config["s3StoreProfiles"].append({
            "s3ProfileName": name, "s3Bucket": extra["bucket"], "s3CompatibleEndpoint": extra["endpoint"],
            "s3Region": extra["region"], "s3SecretRef": {"name": f"{name}-secret", "namespace": OPERATOR_NS}})
    p2p: dict[str, Any] = {"keyPrefix": key_prefix}
    if hmac_key is not None:
        put_secret(c, "coordination-hmac", {"hmacKey": hmac_key})
        p2p["hmacSecretRef"] = {"name": "coordination-hmac"}
    if volsync_seed is not None:
        put_secret(c, VOLSYNC_SEED_SECRET, {"seed": volsync_seed})
        p2p["volSyncSeedSecretRef"] = {"name": VOLSYNC_SEED_SECRET}
    # Ramen's ConfigMap may already hold settings of Ramen's manager (health port, leader election):
    # only the S3 profiles are ours to set there.
    try:
        live = c.core.read_namespaced_config_map(CONFIGMAP_NAME, OPERATOR_NS).data or {}
        merged = yaml.safe_load(live.get(CONFIG_KEY) or "{}") or {}
    except ApiException as e:
        if e.status != 404:
            raise
        merged = {}
    merged.update(ramen_config)
    put_configmap(c, CONFIGMAP_NAME, {CONFIG_KEY: yaml.safe_dump(merged)})
    put_configmap(c, P2P_CONFIGMAP_NAME, {P2P_CONFIG_KEY: yaml.safe_dump(p2p)})
    for name in ("drcluster-east.yaml", "drcluster-west.yaml"):
        dc = load_example(name)
        dc["spec"].pop("peerEndpoint", None)
        peer_kubeconfig = (peer_kubeconfigs or {}).get(dc["metadata"]["name"])
        if peer_kubeconfig is not None:
            dc["spec"]["peerEndpoint"] = _peer_endpoint(c, dc["metadata"]["name"], peer_kubeconfig)
        _apply_cluster_scoped(c, "drclusters", dc)
    pol = load_example("drpolicy.yaml")
    pol["spec"]["schedulingInterval"] = scheduling_interval
    if auto_failover_after:
        pol["spec"]["autoFailover"] = {"enabled": True, "after": auto_failover_after}
    if quorum and policy_quorum:
        pol["spec"]["s3CoordinationQuorum"] = quorum_profiles(len(quorum) + 1)
    _apply_cluster_scoped(c, "drpolicies", pol)


def quorum_profiles(n: int = 3) -> list[str]:
    """The s3CoordinationQuorum of the tests' DRPolicy: the shared profile and the extra servers'."""
    return [PROFILE, *QUORUM_PROFILES[:n - 1]]


def _peer_endpoint(c: Cluster, peer: str, kubeconfig: Path) -> dict[str, Any]:
    """Store the peer's kubeconfig in a Secret on `c`; return the DRCluster peerEndpoint naming it."""
    name = f"{peer}-kubeconfig"
    cfg = inline_kubeconfig(kubeconfig)
    put_secret(c, name, {"kubeconfig": json.dumps(cfg).encode()})
    return {"apiServer": cfg["clusters"][0]["cluster"]["server"],
            "secretRef": {"name": name, "namespace": OPERATOR_NS}}


def inline_kubeconfig(kubeconfig: Path) -> dict[str, Any]:
    """The kubeconfig with its certificate and key files inlined as *-data, as a Secret must hold it."""
    cfg: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    for section, inner in (("clusters", "cluster"), ("users", "user")):
        for item in cfg.get(section) or []:
            body = item[inner]
            for f in ("certificate-authority", "client-certificate", "client-key"):
                if f in body:
                    body[f"{f}-data"] = base64.b64encode(Path(body.pop(f)).read_bytes()).decode()
    return cfg


def put_configmap(c: Cluster, name: str, data: dict[str, str]) -> None:
    """Create or replace a ConfigMap in the operator's namespace."""
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, namespace=OPERATOR_NS), data=data)
    _upsert(lambda: c.core.create_namespaced_config_map(OPERATOR_NS, cm),
            lambda rv: c.core.replace_namespaced_config_map(name, OPERATOR_NS, _with_rv(cm, rv)),
            lambda: c.core.read_namespaced_config_map(name, OPERATOR_NS))


def put_secret(c: Cluster, name: str, data: dict[str, bytes]) -> None:
    """Create or replace a Secret in the operator's namespace."""
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name=name, namespace=OPERATOR_NS),
                             data={k: base64.b64encode(v).decode() for k, v in data.items()})
    _upsert(lambda: c.core.create_namespaced_secret(OPERATOR_NS, secret),
            lambda rv: c.core.replace_namespaced_secret(name, OPERATOR_NS, _with_rv(secret, rv)),
            lambda: c.core.read_namespaced_secret(name, OPERATOR_NS))


def _with_rv(obj: Any, rv: str) -> Any:
    out = copy.deepcopy(obj)
    out.metadata.resource_version = rv
    return out


def _apply_cluster_scoped(c: Cluster, plural: str, obj: dict[str, Any]) -> None:
    """Create, or replace the spec of, a cluster-scoped object (immutable fields must then be equal)."""
    name = obj["metadata"]["name"]
    try:
        c.custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
        return
    except ApiException as e:
        if e.status != 409:
            raise
    live = c.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
    if live.get("spec") == obj["spec"]:
        return
    c.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            c.custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
            return
        except ApiException as e:
            if e.status != 409:
                raise
            time.sleep(0.2)
    raise TimeoutError(f"could not re-create {plural}/{name}")


@dataclass
class Process:
    """A child process with a log file; start, SIGTERM, SIGKILL, restart."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.running():
            return
        with self.log.open("ab") as f:
            f.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            self.proc = subprocess.Popen(self.argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env}, cwd=ROOT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release, as a crash."""
        if self.proc is not None and self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.running():
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Timing:
    poll: str = "1s"
    heartbeat: str = "1s"
    stale_after: str = "6s"
    sim_delay: float = 0.5
    #: VRGs the simulator acts on at once (Ramen's maxConcurrentReconciles).
    sim_workers: int = 1


def operator_process(cluster: str, kubeconfig: Path, logdir: Path, timing: Timing,
                     extra: list[str] | None = None) -> Process:
    return Process(f"operator-{cluster}", [
        sys.executable, "-m", "reconciler.operator", "--cluster-name", cluster, "--kubeconfig", str(kubeconfig),
        "--peer-poll-interval", timing.poll, "--heartbeat-interval", timing.heartbeat,
        "--peer-stale-after", timing.stale_after, "--metrics-bind-address", "127.0.0.1:0",
        "--health-probe-bind-address", "127.0.0.1:0", *(extra or []),
    ], logdir / f"operator-{cluster}.log")


def simulator_process(cluster: str, kubeconfig: Path, s3_config: Path, logdir: Path, timing: Timing,
                      key_prefix: str = "") -> Process:
    return Process(f"vrgsim-{cluster}", [
        sys.executable, "-m", "e2e.vrgsim", "--kubeconfig", str(kubeconfig), "--cluster", cluster,
        "--s3-config", str(s3_config), "--key-prefix", key_prefix, "--delay", str(timing.sim_delay),
        "--timeline", str(logdir / f"timeline-{cluster}.jsonl"), "--workers", str(timing.sim_workers),
    ], logdir / f"vrgsim-{cluster}.log")


def drcontrol(namespace: str, name: str = "app", preferred: str = "east", volsync: bool = False,
              sync: bool = False) -> dict[str, Any]:
    d = load_example("drcontrol.yaml")
    d["metadata"] = {"name": name, "namespace": namespace}
    d["spec"]["drPolicyRef"] = {"name": POLICY}
    if preferred:
        d["spec"]["preferredCluster"] = preferred
    else:
        d["spec"].pop("preferredCluster", None)
    if volsync:
        d["spec"]["vrgSpec"]["volSync"] = {"disabled": False}
    if sync:
        d["spec"]["vrgSpec"]["replicationType"] = "sync"
    return d


def get_drc(c: Cluster, namespace: str, name: str = "app") -> dict[str, Any]:
    obj: dict[str, Any] = c.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "drcontrols", name)
    return obj


def get_vrg(c: Cluster, namespace: str, name: str = "app") -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = c.custom.get_namespaced_custom_object(GROUP, VERSION, namespace,
                                                                     "volumereplicationgroups", name)
        return obj
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return {}


def ready_for_application(obj: dict[str, Any]) -> bool:
    return condition(obj, "ReadyForApplication").get("status") == "True"


def primary_ready(c: Cluster, namespace: str, generation: int, name: str = "app") -> bool:
    """`c` is the Primary of `generation` and ReadyForApplication."""
    d = get_drc(c, namespace, name)
    st = d.get("status") or {}
    return bool(st.get("currentPrimary") == c.name and st.get("generation") == generation
                and ready_for_application(d))


def secondary_settled(c: Cluster, namespace: str, generation: int, name: str = "app") -> bool:
    """`c` saw `generation`, is not the Primary, is not ready for the app, and its VRG reports Secondary."""
    d = get_drc(c, namespace, name)
    st = d.get("status") or {}
    v = get_vrg(c, namespace, name) or {}
    return bool(st.get("generation") == generation and st.get("currentPrimary") != c.name
                and not ready_for_application(d) and (v.get("status") or {}).get("state") == "Secondary")


def set_action(c: Cluster, namespace: str, action: str, target: str, name: str = "app") -> None:
    c.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "drcontrols", name,
                                            {"spec": {"action": action, "targetCluster": target}})


def wait_for(pred: Callable[[], bool], timeout: float, what: str, on_timeout: Callable[[], str] | None = None) -> float:
    """Poll `pred` until true; returns the seconds waited. Raises TimeoutError with context."""
    t0 = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - t0 < timeout:
        try:
            if pred():
                return time.monotonic() - t0
            last_error = None
        except (ApiException, KeyError) as e:
            last_error = e
        time.sleep(0.2)
    detail = on_timeout() if on_timeout else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else "") + (f"\n{detail}" if detail else ""))


def summary_row(cluster: str, drc: dict[str, Any] | None, vrg: dict[str, Any] | None) -> dict[str, str]:
    st = (drc or {}).get("status") or {}
    peer = st.get("peerStatus") or {}
    return {
        "cluster": cluster,
        "role": "Primary" if st.get("currentPrimary") == cluster else ("Secondary" if st.get("currentPrimary")
                                                                       else "-"),
        "generation": str(st.get("generation", "-")),
        "phase": str(st.get("phase", "-")),
        "ready": condition(drc or {}, "ReadyForApplication").get("status", "-"),
        "vrg": f"{((vrg or {}).get('spec') or {}).get('replicationState', '-')}/"
               f"{((vrg or {}).get('status') or {}).get('state', '-')}",
        "peer": "stale" if peer.get("stale") else ("ok" if peer else "-"),
        "lastAction": (f"{(st.get('lastAction') or {}).get('action', '')}->"
                       f"{(st.get('lastAction') or {}).get('targetCluster', '')} "
                       f"{(st.get('lastAction') or {}).get('result', '')}").strip(" ->") or "-",
    }


def format_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def timeline(logdir: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for f in sorted(logdir.glob("timeline-*.jsonl")):
        events += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return sorted(events, key=lambda e: float(e["t"]))


def force_delete_drcontrols(c: Cluster, namespace: str) -> None:
    """Test cleanup with the operators stopped: strip finalizers so nothing lingers for later tests."""
    for plural in ("drcontrols", "volumereplicationgroups"):
        try:
            items = c.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        except ApiException:
            continue
        for it in items:
            name = it["metadata"]["name"]
            try:
                c.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                                        {"metadata": {"finalizers": None}})
                c.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            except ApiException as e:
                if e.status != 404:
                    raise
