"""What every ramenctl command shares: exit codes, errors, S3 and kubeconfig options, clients.

S3 settings come from flags (--endpoint/--bucket/--region/--key-prefix), from a RamenConfig file
(--ramen-config with --profile), or, when neither names an endpoint, from the operator's ConfigMap on
a cluster whose kubeconfig is given. Credentials come from the environment (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY), from a Secret manifest (--credentials FILE), or from the Secret the
operator's profile names on that cluster. They are never printed.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from reconciler.config import CONFIGMAP_NAME, EMPTY_P2P_CONFIGMAP, P2P_CONFIGMAP_NAME, ConfigError, parse_config
from reconciler.s3peer import (
    ClientSettings,
    Credentials,
    KeySchema,
    ObjectStore,
    S3PeerError,
    credentials_from_env,
    credentials_from_secret,
    make_client,
    parse_ramen_config,
)

# Exit codes, documented in the README and in `ramenctl --help`.
EXIT_OK = 0
EXIT_FAILED = 1  # an action failed or was refused, a check failed
EXIT_USAGE = 2  # bad flags, bad input files, unusable configuration
EXIT_TIMEOUT = 3  # --wait gave up

GROUP, VERSION = "ramendr.openshift.io", "v1alpha1"
DEFAULT_OPERATOR_NS = "ramen-system"
#: Short timeouts: a command run during a disaster must not hang on a dead site.
KUBE_TIMEOUT = (3.0, 10.0)
S3_SETTINGS = ClientSettings(connect_timeout=3.0, read_timeout=5.0, max_attempts=2)

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class CLIError(Exception):
    """A failure to report in one line, with the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def rewrite_kubeconfig_flags(argv: Sequence[str]) -> list[str]:
    """`--kubeconfig-east PATH` / `--kubeconfig-east=PATH` -> `--kubeconfig east=PATH` (argparse has no wildcards)."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        m = re.match(r"^--kubeconfig-([a-z0-9][-a-z0-9]*)(=(.*))?$", a)
        if m is None:
            out.append(a)
            continue
        value = m.group(3) if m.group(2) else next(it, None)
        if value is None:
            raise CLIError(f"{a} needs a path")
        out += ["--kubeconfig", f"{m.group(1)}={value}"]
    return out


def valid_cluster_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and len(name) <= 63


def parse_app(text: str) -> tuple[str, str]:
    """NS/NAME of a DRControl."""
    ns, sep, name = text.partition("/")
    if not sep or not _NAME_RE.match(ns) or not re.match(r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", name):
        raise CLIError(f"not an application (want NAMESPACE/NAME): {text!r}")
    return ns, name


def parse_kubeconfigs(values: Sequence[str] | None) -> dict[str, Path]:
    """`NAME=PATH` pairs into an ordered mapping; the paths must exist."""
    out: dict[str, Path] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not _NAME_RE.match(name) or not path:
            raise CLIError(f"--kubeconfig wants CLUSTER=PATH (or --kubeconfig-CLUSTER PATH), got {v!r}")
        p = Path(path).expanduser()
        if not p.is_file():
            raise CLIError(f"kubeconfig for {name}: no such file {p}")
        out[name] = p
    return out


def add_kube_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", action="append", metavar="CLUSTER=PATH",
                   help="kubeconfig of a DR cluster, repeatable; --kubeconfig-CLUSTER PATH is the same")
    p.add_argument("--operator-namespace", default=DEFAULT_OPERATOR_NS,
                   help=f"namespace of the operator and its ConfigMap (default {DEFAULT_OPERATOR_NS})")


def add_s3_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("S3 (optional when a kubeconfig is given: read from the operator's ConfigMap)")
    g.add_argument("--endpoint", help="S3 endpoint URL")
    g.add_argument("--bucket", help="the coordination bucket")
    g.add_argument("--region", help="S3 region (default us-east-1)")
    g.add_argument("--key-prefix", help="prefix of the coordination keys (p2p.keyPrefix)")
    g.add_argument("--ramen-config", type=Path, metavar="FILE",
                   help="a RamenConfig (or the operator's ConfigMap) to take the S3 profile from")
    g.add_argument("--profile", help="s3StoreProfiles name (default: the only or first profile)")
    g.add_argument("--credentials", type=Path, metavar="FILE",
                   help="a Secret manifest with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default: environment)")
    g.add_argument("--hmac-key-file", type=Path, metavar="FILE",
                   help="the coordination HMAC key, to verify signatures (unchecked without it)")


# -- kubernetes ------------------------------------------------------------------
@dataclass
class Kube:
    """One cluster's API, with short timeouts on every call."""

    name: str
    api: Any

    @property
    def core(self) -> Any:
        return k8s.CoreV1Api(self.api)

    @property
    def custom(self) -> Any:
        return k8s.CustomObjectsApi(self.api)

    def get_drc(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "drcontrols", name, _request_timeout=KUBE_TIMEOUT)
            return obj
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list_drcs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_cluster_custom_object(
            GROUP, VERSION, "drcontrols", _request_timeout=KUBE_TIMEOUT)["items"]
        return items


def kube_client(name: str, path: Path) -> Kube:
    cfg = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=str(path), client_configuration=cfg)
    except (k8s_config.ConfigException, OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as e:
        detail = " ".join(str(e).split())  # YAML errors span lines; keep the message to one
        raise CLIError(f"kubeconfig for {name} ({path}) is not usable: {detail}") from None
    cfg.retries = 1  # urllib3 retries 3 times by default; one is enough to ride a blip
    return Kube(name, k8s.ApiClient(cfg))


def kube_error(e: BaseException) -> str:
    """A short description of a failed API call."""
    if isinstance(e, ApiException):
        return f"HTTP {e.status} {e.reason}".strip()
    text = str(e)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if marker in text:
            return f"unreachable ({marker.lower()})"
    return f"unreachable ({type(e).__name__})"


# -- S3 -------------------------------------------------------------------------------
@dataclass
class S3Target:
    store: ObjectStore
    keys: KeySchema
    hmac_key: bytes | None
    endpoint: str
    bucket: str
    source: str  # where the settings came from, for messages


def _read_doc(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise CLIError(f"{what} {path}: {e}") from None


def _pick_profile(profiles: Mapping[str, Any], wanted: str | None, where: str) -> Any:
    if not profiles:
        raise CLIError(f"{where}: no s3StoreProfiles")
    if wanted:
        if wanted not in profiles:
            raise CLIError(f"{where}: no S3 profile {wanted!r} (has {', '.join(profiles)})")
        return profiles[wanted]
    return next(iter(profiles.values()))


def _credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> Credentials | None:
    if args.credentials is not None:
        doc = _read_doc(args.credentials, "credentials")
        if not isinstance(doc, Mapping):
            raise CLIError(f"credentials {args.credentials}: not a Secret manifest")
        try:
            return credentials_from_secret(doc)
        except S3PeerError as e:
            raise CLIError(f"credentials {args.credentials}: {e.message}") from None
    try:
        return credentials_from_env(environ)
    except S3PeerError:
        return None


def resolve_s3(args: argparse.Namespace, kubes: Sequence[Kube], environ: Mapping[str, str] | None = None,
               *, required: bool = True) -> S3Target | None:
    """The coordination bucket from flags, a RamenConfig file, or a cluster's operator ConfigMap."""
    env = os.environ if environ is None else environ
    endpoint, bucket, region, prefix = args.endpoint, args.bucket, args.region, args.key_prefix
    creds = _credentials(args, env)
    source = "flags"
    ca: bytes | None = None
    if args.ramen_config is not None:
        doc = _read_doc(args.ramen_config, "RamenConfig")
        try:
            prof = _pick_profile(parse_ramen_config(doc), args.profile, str(args.ramen_config))
        except S3PeerError as e:
            raise CLIError(f"RamenConfig {args.ramen_config}: {e.message}") from None
        endpoint, bucket, region = endpoint or prof.endpoint, bucket or prof.bucket, region or prof.region
        ca = prof.ca_certificates
        if prefix is None and isinstance(doc, Mapping):
            inner = doc
            if isinstance(doc.get("data"), Mapping):
                inner = yaml.safe_load(str(doc["data"].get("ramen_manager_config.yaml", ""))) or {}
            p2p = inner.get("p2p") if isinstance(inner, Mapping) else None
            prefix = p2p.get("keyPrefix") if isinstance(p2p, Mapping) else None
        source = str(args.ramen_config)
    if not endpoint:
        for kube in kubes:
            found = _s3_from_cluster(kube, args, creds)
            if found is not None:
                endpoint, bucket, region, cluster_prefix, creds, ca = found
                prefix = prefix if prefix is not None else cluster_prefix
                source = f"the operator ConfigMap on {kube.name}"
                break
    if not endpoint or not bucket:
        if not required:
            return None
        raise CLIError("no S3 settings: give --endpoint and --bucket, --ramen-config, or a kubeconfig of a cluster "
                       "whose operator ConfigMap is readable")
    if creds is None:
        if not required:
            return None
        raise CLIError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --credentials "
                       "with a Secret manifest")
    hmac_key = None
    if args.hmac_key_file is not None:
        try:
            hmac_key = args.hmac_key_file.read_bytes().strip()
        except OSError as e:
            raise CLIError(f"--hmac-key-file: {e}") from None
    if not re.match(r"^https?://[^/\s]+", endpoint):
        raise CLIError(f"S3 endpoint must be an http(s) URL, got {endpoint!r} (from {source})")
    try:
        client = make_client(endpoint, region or "us-east-1", creds, S3_SETTINGS, ca_certificates=ca)
    except ValueError as e:
        raise CLIError(f"S3 endpoint {endpoint!r} (from {source}): {e}") from None
    return S3Target(ObjectStore(client, bucket), KeySchema(prefix or ""), hmac_key, endpoint, bucket, source)


def _s3_from_cluster(kube: Kube, args: argparse.Namespace, creds: Credentials | None
                     ) -> tuple[str, str, str, str, Credentials, bytes | None] | None:
    """The profile of the operator running on `kube`, with its Secret when no credentials were given."""
    ns = args.operator_namespace
    try:
        cm = kube.core.read_namespaced_config_map(CONFIGMAP_NAME, ns, _request_timeout=KUBE_TIMEOUT)
        try:
            ours = kube.api.sanitize_for_serialization(
                kube.core.read_namespaced_config_map(P2P_CONFIGMAP_NAME, ns, _request_timeout=KUBE_TIMEOUT))
        except ApiException as e:
            if e.status != 404:
                raise
            ours = EMPTY_P2P_CONFIGMAP  # no key prefix, no signing
        cfg = parse_config(kube.api.sanitize_for_serialization(cm), ours, ns)
        prof = _pick_profile(cfg.profiles, args.profile, f"ConfigMap {ns}/{CONFIGMAP_NAME} on {kube.name}")
        if creds is None:
            sec = kube.core.read_namespaced_secret(prof.secret_ref.name, prof.secret_ref.namespace,
                                                   _request_timeout=KUBE_TIMEOUT)
            creds = credentials_from_secret(kube.api.sanitize_for_serialization(sec))
    except (ApiException, ConfigError, S3PeerError, CLIError, OSError):
        return None
    except Exception as e:  # urllib3 errors of an unreachable API server
        if "urllib3" in type(e).__module__:
            return None
        raise
    return prof.endpoint, prof.bucket, prof.region, cfg.key_prefix, creds, prof.ca_certificates


def s3_error_text(e: S3PeerError) -> str:
    """Short enough for a table cell: an outage is named by its reason, anything else also by its message."""
    if e.reason in ("S3Unreachable", "S3Throttled"):
        return e.reason
    return f"{e.reason}: {e.message}"


def connect_kubes(args: argparse.Namespace) -> list[Kube]:
    return [kube_client(n, p) for n, p in parse_kubeconfigs(args.kubeconfig).items()]


def is_unreachable(e: BaseException) -> bool:
    """An API server that did not answer (as opposed to one that refused the request)."""
    return not isinstance(e, ApiException) and ("urllib3" in type(e).__module__ or isinstance(e, OSError))
