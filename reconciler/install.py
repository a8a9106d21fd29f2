"""The install bundle for one DR cluster: `render_install(options)` returns multi-document YAML.

The bundle holds the Namespace, our CRDs, the ServiceAccount with least-privilege RBAC, the
operator's ConfigMap (a RamenConfig), both DRClusters (and optionally the DRPolicy), the
Deployment and a metrics Service. The S3 credentials Secret is rendered only from the
environment, on request, so credentials never pass through a command line.

Templates live in `templates/install/` and CRDs in `crds/` at the top of the source tree. They
are found, in order, under `$RAMEN_P2P_DATA_DIR`, next to the package (a checkout, or
`pip install -e .`), and under `<prefix>/share/ramen-p2p/` (where a wheel install puts them, see
`[tool.setuptools.data-files]` in pyproject.toml).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2
import yaml

from reconciler import __version__
from reconciler.config import CONFIG_KEY, CONFIGMAP_NAME, P2P_CONFIG_KEY, P2P_CONFIGMAP_NAME
from reconciler.durations import parse_duration

OPERATOR_NAME = "ramen-p2p-operator"
"""Name of the ServiceAccount, ClusterRole, Role, bindings and Deployment."""

LEASE_NAME = "ramen-p2p-operator"
"""The leader-election Lease (reconciler/manager.py, `Manager.run`)."""

DEFAULT_IMAGE = f"quay.io/ramendr/ramen-p2p:v{__version__}"
METRICS_PORT = 8080
PROBE_PORT = 8081
DATA_DIR_ENV = "RAMEN_P2P_DATA_DIR"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_INTERVAL = re.compile(r"^[1-9][0-9]*[mhd]$")  # the DRPolicy CRD's schedulingInterval, non-empty
_CIDR = re.compile(r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")
_PRINTABLE = re.compile(r"^[!-~]+$")  # visible ASCII, no whitespace


class InstallError(ValueError):
    """An option cannot be rendered; the message names the option and what is wrong."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never show the values, e.g. in a traceback
        return "Credentials(<redacted>)"


@dataclass(frozen=True)
class InstallOptions:
    cluster_name: str
    peer: str
    s3_endpoint: str
    s3_bucket: str = "ramen"
    s3_region: str = "us-east-1"
    s3_profile: str = "s3-profile-shared"
    s3_secret_name: str = "s3-secret"
    namespace: str = "ramen-system"
    image: str = DEFAULT_IMAGE
    key_prefix: str = ""
    schedule_interval: str = "5m"
    include_crds: bool = True
    with_policy: bool = False
    with_monitoring: bool = False
    replicas: int = 1
    hmac_secret_name: str | None = None
    # Secret (key `seed`) the VolSync PSK of every app is derived from; the same on both clusters.
    volsync_seed_secret_name: str | None = None
    # DRControls may name a Flux Kustomization for the operator to own (spec.application.fluxKustomization).
    with_flux: bool = False
    cidrs: tuple[str, ...] = ()
    peer_cidrs: tuple[str, ...] = ()
    peer_poll_interval: str = "30s"
    heartbeat_interval: str = "60s"
    # Optional direct nudges: the peer's API server and a Secret (key `kubeconfig`) to reach it.
    peer_api_server: str | None = None
    peer_kubeconfig_secret: str | None = None
    credentials: Credentials | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Rule:
    """One RBAC policy rule."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()


# What the operator calls, cluster-wide (reconciler/manager.py and reconciler/controllers/):
# informers list+watch; the applier creates and JSON-patches; status goes through /status.
CLUSTER_RULES: tuple[Rule, ...] = (
    # DRControl: cached; finalizer added/removed by a patch of the main resource; status patched.
    Rule(("ramendr.openshift.io",), ("drcontrols",), ("list", "watch", "patch")),
    Rule(("ramendr.openshift.io",), ("drcontrols/status", "drpolicies/status", "drclusters/status"), ("patch",)),
    Rule(("ramendr.openshift.io",), ("drpolicies", "drclusters"), ("list", "watch")),
    # The VRG of each protected app: created, patched and, when protection is removed, deleted.
    # `get`: a release is published only after a fresh read of the VRG (not the cache).
    Rule(("ramendr.openshift.io",), ("volumereplicationgroups",),
         ("get", "list", "watch", "create", "patch", "delete")),
    # Local fencing (DRCluster clusterFence).
    Rule(("csiaddons.openshift.io",), ("networkfences",), ("list", "watch", "create", "patch", "delete")),
    # Storage classes published to the peer; the last two only when their CRDs are served.
    Rule(("storage.k8s.io",), ("storageclasses",), ("list", "watch")),
    Rule(("snapshot.storage.k8s.io",), ("volumesnapshotclasses",), ("list", "watch")),
    Rule(("replication.storage.openshift.io",), ("volumereplicationclasses",), ("list", "watch")),
    # Events go to the DRControl's namespace, so they cannot be confined to the operator's.
    Rule(("",), ("events",), ("create", "patch")),
    # /metrics asks the API server who a scraper is and whether it may read /metrics.
    Rule(("authentication.k8s.io",), ("tokenreviews",), ("create",)),
    Rule(("authorization.k8s.io",), ("subjectaccessreviews",), ("create",)),
)


# Only with a VolSync seed: the PSK Secret `<vrg>-vs-secret` of each app, in the app's namespace
# (a create cannot be limited by name, and the names vary per app).
# The owned Kustomizations (reconciler/plan/application.py): read, created, rewritten, deleted.
FLUX_RULES: tuple[Rule, ...] = (
    Rule(("kustomize.toolkit.fluxcd.io",), ("kustomizations",), ("get", "create", "patch", "delete")),)
VOLSYNC_RULES: tuple[Rule, ...] = (Rule(("",), ("secrets",), ("get", "create", "patch")),)


def cluster_rules(options: InstallOptions) -> tuple[Rule, ...]:
    return CLUSTER_RULES + (VOLSYNC_RULES if options.volsync_seed_secret_name else ()) + \
        (FLUX_RULES if options.with_flux else ())


def namespace_rules(options: InstallOptions) -> tuple[Rule, ...]:
    """What the operator touches in its own namespace, by name wherever RBAC allows it."""
    secrets = tuple(dict.fromkeys(n for n in (options.s3_secret_name, options.hmac_secret_name,
                                              options.peer_kubeconfig_secret, options.volsync_seed_secret_name)
                                  if n))
    return (
        Rule(("",), ("secrets",), ("get",), secrets),
        Rule(("",), ("configmaps",), ("get",), (CONFIGMAP_NAME, P2P_CONFIGMAP_NAME)),
        # A create cannot be limited by name (the object does not exist yet).
        Rule(("coordination.k8s.io",), ("leases",), ("create",)),
        Rule(("coordination.k8s.io",), ("leases",), ("get", "update"), (LEASE_NAME,)),
    )


# -- validation ------------------------------------------------------------------------------
def _check(ok: bool, option: str, value: object, why: str) -> None:
    if not ok:
        raise InstallError(f"{option} {value!r}: {why}")


def validate(o: InstallOptions) -> None:
    """Raise InstallError for the first option that cannot make a working bundle."""
    for opt, v in (("--cluster-name", o.cluster_name), ("--peer", o.peer), ("--namespace", o.namespace)):
        _check(len(v) <= 63 and bool(_DNS_LABEL.match(v)), opt, v,
               "must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)")
    _check(o.cluster_name != o.peer, "--peer", o.peer, "must differ from --cluster-name")
    url = urlparse(o.s3_endpoint)
    _check(url.scheme in ("http", "https") and bool(url.hostname) and not url.query and not url.fragment,
           "--s3-endpoint", o.s3_endpoint, "must be an http:// or https:// URL with a host")
    _check(bool(_BUCKET.match(o.s3_bucket)) and ".." not in o.s3_bucket, "--s3-bucket", o.s3_bucket,
           "must be an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')")
    _check(bool(_PRINTABLE.match(o.s3_region)), "--s3-region", o.s3_region, "must be a non-empty word")
    _check(len(o.s3_profile) <= 253 and bool(_PRINTABLE.match(o.s3_profile)), "--s3-profile", o.s3_profile,
           "must be non-empty, without spaces, at most 253 characters")
    _check((o.peer_api_server is None) == (o.peer_kubeconfig_secret is None), "--peer-api-server",
           o.peer_api_server, "goes with --peer-kubeconfig-secret (both or neither)")
    if o.peer_api_server is not None:
        api = urlparse(o.peer_api_server)
        _check(api.scheme == "https" and bool(api.hostname), "--peer-api-server", o.peer_api_server,
               "must be an https:// URL")
    for opt, name in (("--s3-secret-name", o.s3_secret_name), ("--hmac-secret-name", o.hmac_secret_name),
                      ("--peer-kubeconfig-secret", o.peer_kubeconfig_secret),
                      ("--volsync-seed-secret-name", o.volsync_seed_secret_name)):
        if name is not None:
            _check(len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name)), opt, name,
                   "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')")
    _check(bool(_PRINTABLE.match(o.image)), "--image", o.image, "must be an image reference without spaces")
    _check(o.key_prefix == "" or (bool(_PRINTABLE.match(o.key_prefix)) and not o.key_prefix.startswith("/")),
           "--key-prefix", o.key_prefix, "must not contain spaces or start with '/'")
    _check(bool(_INTERVAL.match(o.schedule_interval)), "--schedule-interval", o.schedule_interval,
           "must be a number followed by m, h or d (e.g. 5m)")
    _check(1 <= o.replicas <= 3, "--replicas", o.replicas, "must be 1, 2 or 3 (one leader, the rest standby)")
    for opt, d in (("--peer-poll-interval", o.peer_poll_interval), ("--heartbeat-interval", o.heartbeat_interval)):
        _check(_is_duration(d), opt, d, "must be a duration such as 30s or 1m")
    for opt, cidrs in (("--cidrs", o.cidrs), ("--peer-cidrs", o.peer_cidrs)):
        for c in cidrs:
            _check(bool(_CIDR.match(c)), opt, c, "must be a CIDR such as 10.0.0.0/16")
    if o.credentials is not None:
        # Say which variable is wrong, never what it holds.
        _check(bool(o.credentials.access_key_id), "AWS_ACCESS_KEY_ID", "<from the environment>", "is empty")
        _check(bool(o.credentials.secret_access_key), "AWS_SECRET_ACCESS_KEY", "<from the environment>", "is empty")


def _is_duration(text: str) -> bool:
    try:
        return parse_duration(text) > 0
    except ValueError:
        return False


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials:
    """The S3 keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; InstallError names a missing one."""
    env = os.environ if env is None else env
    missing = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(k)]
    if missing:
        raise InstallError(f"--s3-credentials-from-env: {' and '.join(missing)} not set in the environment")
    return Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])


# -- data files ------------------------------------------------------------------------------
def data_dir() -> Path:
    """The directory holding `templates/install/` and `crds/` (see the module docstring)."""
    candidates = []
    if os.environ.get(DATA_DIR_ENV):
        candidates.append(Path(os.environ[DATA_DIR_ENV]))
    candidates += [Path(__file__).resolve().parent.parent, Path(sys.prefix) / "share" / "ramen-p2p"]
    for c in candidates:
        if (c / "templates" / "install" / "bundle.yaml.j2").is_file() and (c / "crds").is_dir() \
                and (c / "monitoring" / "alerts.yaml").is_file():
            return c
    raise InstallError("install templates not found; set " + DATA_DIR_ENV + " to a ramen-p2p source tree "
                       f"(looked in {', '.join(str(c) for c in candidates)})")


def crd_documents(root: Path) -> list[str]:
    """Each CRD file's YAML, without leading comments or document markers, in a stable order."""
    docs = []
    for path in sorted((root / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                # Re-dumped so the file's own comments and `---` cannot break the bundle's layout.
                docs.append(yaml.safe_dump(doc, sort_keys=False).rstrip("\n"))
    return docs


# -- rendering -------------------------------------------------------------------------------
def ramen_config(o: InstallOptions) -> dict[str, Any]:
    """The RamenConfig of Ramen's ConfigMap, shared with Ramen's manager (format: reconciler/config.py)."""
    return {
        "apiVersion": "ramendr.openshift.io/v1alpha1",
        "kind": "RamenConfig",
        "s3StoreProfiles": [{
            "s3ProfileName": o.s3_profile,
            "s3Bucket": o.s3_bucket,
            "s3CompatibleEndpoint": o.s3_endpoint,
            "s3Region": o.s3_region,
            "s3SecretRef": {"name": o.s3_secret_name, "namespace": o.namespace},
        }],
    }


def p2p_config(o: InstallOptions) -> dict[str, Any]:
    """ramen-p2p's own settings, in a ConfigMap Ramen's manager does not rewrite (reconciler/config.py)."""
    p2p: dict[str, Any] = {"keyPrefix": o.key_prefix}
    if o.hmac_secret_name:
        p2p["hmacSecretRef"] = {"name": o.hmac_secret_name, "namespace": o.namespace}
    if o.volsync_seed_secret_name:
        p2p["volSyncSeedSecretRef"] = {"name": o.volsync_seed_secret_name, "namespace": o.namespace}
    return p2p


def operator_args(o: InstallOptions) -> list[str]:
    """The container's arguments: ramen-operator's documented flags (reconciler/operator.py)."""
    return [
        f"--cluster-name={o.cluster_name}",
        f"--namespace={o.namespace}",
        f"--peer-poll-interval={o.peer_poll_interval}",
        f"--heartbeat-interval={o.heartbeat_interval}",
        # $(POD_IP) is expanded by the kubelet from the container's env (the downward API).
        f"--metrics-bind-address=$(POD_IP):{METRICS_PORT}",
        f"--health-probe-bind-address=$(POD_IP):{PROBE_PORT}",
        "--leader-elect",
        "--log-format=json",
    ]


def policy_name(o: InstallOptions) -> str:
    """Sorted, so both clusters' bundles name the same DRPolicy."""
    a, b = sorted((o.cluster_name, o.peer))
    return f"dr-policy-{a}-{b}"


def _yaml_map(d: Mapping[str, str]) -> str:
    return "\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in d.items())


def _rule_view(r: Rule) -> dict[str, list[str]]:
    return {"api_groups": list(r.api_groups), "resources": list(r.resources), "verbs": list(r.verbs),
            "resource_names": list(r.resource_names)}


def render_install(options: InstallOptions) -> str:
    """The bundle as multi-document YAML; InstallError on invalid options."""
    validate(options)
    root = data_dir()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(root / "templates" / "install"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    selector = {"app.kubernetes.io/name": "ramen-p2p", "app.kubernetes.io/component": "operator"}
    labels = {**selector, "app.kubernetes.io/instance": options.cluster_name,
              "app.kubernetes.io/version": __version__, "app.kubernetes.io/managed-by": "ramenctl"}
    creds = None
    if options.credentials is not None:
        creds = {"access_key_id": base64.b64encode(options.credentials.access_key_id.encode()).decode(),
                 "secret_access_key": base64.b64encode(options.credentials.secret_access_key.encode()).decode()}
    peer_endpoint = None
    if options.peer_api_server and options.peer_kubeconfig_secret:
        peer_endpoint = {"apiServer": options.peer_api_server,
                         "secretRef": {"name": options.peer_kubeconfig_secret, "namespace": options.namespace}}
    clusters = [{"name": options.cluster_name, "cidrs": list(options.cidrs), "peer_endpoint": None},
                {"name": options.peer, "cidrs": list(options.peer_cidrs), "peer_endpoint": peer_endpoint}]
    text = env.get_template("bundle.yaml.j2").render(
        o=options,
        version=__version__,
        sa=OPERATOR_NAME,
        labels=_yaml_map(labels),
        selector=_yaml_map(selector),
        crds=crd_documents(root) if options.include_crds else [],
        cluster_rules=[_rule_view(r) for r in cluster_rules(options)],
        namespace_rules=[_rule_view(r) for r in namespace_rules(options)],
        configmap_name=CONFIGMAP_NAME,
        config_key=CONFIG_KEY,
        ramen_config=yaml.safe_dump(ramen_config(options), sort_keys=False).rstrip("\n"),
        p2p_configmap_name=P2P_CONFIGMAP_NAME,
        p2p_config_key=P2P_CONFIG_KEY,
        p2p_config=yaml.safe_dump(p2p_config(options), sort_keys=False).rstrip("\n"),
        credentials=creds,
        clusters=clusters,
        policy_name=policy_name(options),
        policy_clusters=sorted((options.cluster_name, options.peer)),
        args=operator_args(options),
        metrics_port=METRICS_PORT,
        rule_groups=monitoring_rules(root)["groups"] if options.with_monitoring else [],
        dashboard=(root / "monitoring" / "dashboard.json").read_text() if options.with_monitoring else "",
        probe_port=PROBE_PORT,
    )
    # Blank lines left by skipped template sections; a `---` at column 0 is never inside a scalar.
    text = re.sub(r"\n(?:[ \t]*\n)+(?=---\n|#)", "\n", text)
    return text.rstrip("\n") + "\n"


def monitoring_rules(root: Path) -> dict[str, Any]:
    """The alerting rules (a Prometheus rule file, the one promtool checks)."""
    rules = yaml.safe_load((root / "monitoring" / "alerts.yaml").read_text())
    if not isinstance(rules, dict) or not isinstance(rules.get("groups"), list):
        raise InstallError(f"{root / 'monitoring' / 'alerts.yaml'} holds no rule groups")
    return rules


def render_crds() -> str:
    """Only our CRDs, for installing them (and waiting until they are established) before the rest."""
    return "".join(f"---\n{d}\n" for d in crd_documents(data_dir()))


def documents(bundle: str) -> list[dict[str, Any]]:
    """The non-empty documents of a rendered bundle."""
    return [d for d in yaml.safe_load_all(bundle) if d]


def objects_of_kind(docs: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]
