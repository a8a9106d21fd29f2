"""`ramenctl doctor cluster`: is this DR cluster set up for its operator to work?

One line per check, each failure with the fix. Checks read only (the S3 check GETs the
heartbeats; nothing is written), so it is safe to run against a production cluster.
"""

from __future__ import annotations

import argparse
import email.utils
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from reconciler.cli.common import (
    DEFAULT_OPERATOR_NS,
    EXIT_FAILED,
    EXIT_OK,
    GROUP,
    KUBE_TIMEOUT,
    S3_SETTINGS,
    VERSION,
    CLIError,
    Kube,
    kube_client,
    kube_error,
    s3_error_text,
)
from reconciler.config import CONFIGMAP_NAME, P2P_CONFIGMAP_NAME, ConfigError, OperatorConfig, parse_config
from reconciler.install import OPERATOR_NAME, InstallOptions, Rule, cluster_rules, namespace_rules
from reconciler.s3peer import (
    Health,
    KeySchema,
    Kind,
    ObjectStore,
    S3PeerError,
    StoredObject,
    classify,
    client_for_profile,
    credentials_from_secret,
    probe,
)
from reconciler.s3peer import envelope as env
from reconciler.s3peer.peer import decode_record

EPILOG = """\
examples:
  ramenctl doctor cluster --kubeconfig east.kubeconfig
  ramenctl doctor cluster --kubeconfig east.kubeconfig --cluster-name east --service-account ramen-system/my-sa

exit codes: 0 every check passed, 1 a check failed, 2 usage error (e.g. an unreadable kubeconfig)
"""

CRDS = (
    ("drcontrols.ramendr.openshift.io", "ramenctl render crds | kubectl apply -f -"),
    ("drpolicies.ramendr.openshift.io", "ramenctl render crds | kubectl apply -f -"),
    ("drclusters.ramendr.openshift.io", "ramenctl render crds | kubectl apply -f -"),
    ("volumereplicationgroups.ramendr.openshift.io",
     "install Ramen's DR-cluster operator (its VolumeReplicationGroup CRD and controller)"),
)


def add_parser(which: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = which.add_parser("cluster", help="check CRDs, RBAC, operator config, S3 and the peer's heartbeat",
                         description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True, type=Path, help="kubeconfig of the DR cluster to check")
    p.add_argument("--operator-namespace", default=DEFAULT_OPERATOR_NS,
                   help=f"namespace of the operator (default {DEFAULT_OPERATOR_NS})")
    p.add_argument("--service-account", default=None, metavar="NS/NAME",
                   help=f"the operator's ServiceAccount (default OPERATOR-NAMESPACE/{OPERATOR_NAME})")
    p.add_argument("--cluster-name", default=None,
                   help="this cluster's DR name (default: from the operator Deployment's --cluster-name)")
    p.add_argument("--stale-after", type=float, default=180.0,
                   help="heartbeat age, seconds, beyond which it counts as stale (default 180)")


@dataclass
class Check:
    name: str
    status: str  # ok, FAIL, info, skip
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"[{self.status}] {self.name}: {self.detail}"]
        if self.fix and self.status == "FAIL":
            out.append(f"       fix: {self.fix}")
        return out


class Doctor:
    def __init__(self, kube: Kube, namespace: str, sa: tuple[str, str], cluster_name: str | None,
                 stale_after: float) -> None:
        self.kube = kube
        self.ns = namespace
        self.sa = sa
        self.cluster_name = cluster_name
        self.stale_after = stale_after
        self.checks: list[Check] = []
        self.config: OperatorConfig | None = None
        self.policy: dict[str, Any] | None = None
        self.store: ObjectStore | None = None

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def guarded(self, name: str, fn: Callable[[], None]) -> None:
        """A check that cannot reach the API server fails with the reason instead of ending the run."""
        try:
            fn()
        except ApiException as e:
            self.add(name, "FAIL", kube_error(e), "check the kubeconfig's user may read this (doctor runs as it)")
        except Exception as e:
            if "urllib3" in type(e).__module__ or isinstance(e, OSError):
                self.add(name, "FAIL", kube_error(e))
            else:
                raise

    # -- checks --------------------------------------------------------------
    def api(self) -> bool:
        try:
            _, _, headers = k8s.VersionApi(self.kube.api).get_code_with_http_info(_request_timeout=KUBE_TIMEOUT)
        except Exception as e:  # the first call tells whether the API server is there at all
            self.add("API server", "FAIL", kube_error(e), "check the kubeconfig's server and credentials")
            return False
        host = self.kube.api.configuration.host
        self.add("API server", "ok", f"{host} answers")
        self._clock("API server", headers.get("Date") if headers else None)
        return True

    def crds(self) -> None:
        ext = k8s.ApiextensionsV1Api(self.kube.api)
        for name, fix in CRDS:
            try:
                crd = ext.read_custom_resource_definition(name, _request_timeout=KUBE_TIMEOUT)
            except ApiException as e:
                if e.status == 404:
                    self.add(f"CRD {name}", "FAIL", "not installed", fix)
                    continue
                raise
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True":
                self.add(f"CRD {name}", "ok", "established")
            else:
                self.add(f"CRD {name}", "FAIL", "not established yet", f"kubectl wait --for condition=established "
                         f"crd/{name}")

    def operator_config(self) -> None:
        where = f"ConfigMap {self.ns}/{CONFIGMAP_NAME}"
        fix = (f"create it from `ramenctl render install ...` (the RamenConfig with the S3 profile), "
               f"or edit it: kubectl -n {self.ns} edit configmap {CONFIGMAP_NAME}")
        try:
            cm = self.kube.core.read_namespaced_config_map(CONFIGMAP_NAME, self.ns, _request_timeout=KUBE_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                self.add("operator config", "FAIL", f"{where} not found", fix)
                return
            raise
        try:
            ours = self.kube.core.read_namespaced_config_map(P2P_CONFIGMAP_NAME, self.ns,
                                                             _request_timeout=KUBE_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                self.add("operator config", "FAIL", f"ConfigMap {self.ns}/{P2P_CONFIGMAP_NAME} not found (the "
                         "operator does not start without it)", "create it from `ramenctl render install ...`")
                return
            raise
        try:
            self.config = parse_config(self.kube.api.sanitize_for_serialization(cm),
                                       self.kube.api.sanitize_for_serialization(ours), self.ns)
        except ConfigError as e:
            self.add("operator config", "FAIL", f"{where}: {e}", fix)
            return
        self.add("operator config", "ok", f"{where}: profiles {', '.join(self.config.profiles)}"
                 + (f", key prefix {self.config.key_prefix!r}" if self.config.key_prefix else ""))

    def dr_objects(self) -> None:
        pols = self.kube.custom.list_cluster_custom_object(GROUP, VERSION, "drpolicies",
                                                           _request_timeout=KUBE_TIMEOUT)["items"]
        if not pols:
            self.add("DRPolicy", "FAIL", "none", "ramenctl render install ... --with-policy | kubectl apply -f -")
            return
        self.policy = pols[0]
        spec = self.policy.get("spec") or {}
        names = ", ".join(p["metadata"]["name"] for p in pols)
        profile = spec.get("s3CoordinationProfile")
        if self.config is not None and profile and profile not in self.config.profiles:
            self.add("DRPolicy", "FAIL", f"{self.policy['metadata']['name']} names S3 profile {profile!r}, which the "
                     f"operator config does not have ({', '.join(self.config.profiles)})",
                     "make spec.s3CoordinationProfile name a profile of the RamenConfig")
        else:
            self.add("DRPolicy", "ok", f"{names}: clusters {', '.join(spec.get('drClusters') or [])}")
        have = {d["metadata"]["name"] for d in self.kube.custom.list_cluster_custom_object(
            GROUP, VERSION, "drclusters", _request_timeout=KUBE_TIMEOUT)["items"]}
        missing = [c for c in spec.get("drClusters") or [] if c not in have]
        if missing:
            self.add("DRClusters", "FAIL", f"missing {', '.join(missing)}",
                     "apply both DRClusters (ramenctl render install prints them)")
        else:
            self.add("DRClusters", "ok", ", ".join(sorted(have)))

    def rbac(self) -> None:
        sa_ns, sa_name = self.sa
        try:
            self.kube.core.read_namespaced_service_account(sa_name, sa_ns, _request_timeout=KUBE_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                self.add("RBAC", "FAIL", f"ServiceAccount {sa_ns}/{sa_name} not found",
                         "apply the bundle from `ramenctl render install` (or pass --service-account)")
                return
            raise
        secrets = sorted({p.secret_ref.name for p in (self.config.profiles.values() if self.config else [])
                          if p.secret_ref.namespace == self.ns}
                         | ({self.config.hmac_secret.name} if self.config and self.config.hmac_secret else set()))
        seed = self.config.volsync_seed.name if self.config and self.config.volsync_seed else None
        opts = InstallOptions("x", "y", "http://x", s3_secret_name=secrets[0] if secrets else "s3-secret",
                              hmac_secret_name=secrets[1] if len(secrets) > 1 else None,
                              volsync_seed_secret_name=seed)
        user = f"system:serviceaccount:{sa_ns}:{sa_name}"
        auth = k8s.AuthorizationV1Api(self.kube.api)
        missing: list[str] = []
        asked = 0
        for rule, namespaced in [(r, False) for r in cluster_rules(opts)] + [(r, True) for r in namespace_rules(opts)]:
            for attrs in _attributes(rule, self.ns if namespaced else None):
                asked += 1
                review = k8s.V1SubjectAccessReview(spec=k8s.V1SubjectAccessReviewSpec(
                    user=user, groups=["system:serviceaccounts", f"system:serviceaccounts:{sa_ns}"],
                    resource_attributes=attrs))
                res = auth.create_subject_access_review(review, _request_timeout=KUBE_TIMEOUT)
                if not res.status.allowed:
                    missing.append(_describe(attrs))
        if missing:
            self.add("RBAC", "FAIL", f"{user} may not {'; '.join(missing[:6])}"
                     + (f" (and {len(missing) - 6} more)" if len(missing) > 6 else ""),
                     "apply the ClusterRole, Role and bindings from `ramenctl render install`")
        else:
            self.add("RBAC", "ok", f"{user} has the {asked} permissions the operator uses")
        # Doctor's own identity: a Forbidden above would otherwise be mistaken for the operator's problem.
        own = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(verb="get", resource="secrets", namespace=self.ns)))
        if not auth.create_self_subject_access_review(own, _request_timeout=KUBE_TIMEOUT).status.allowed:
            self.add("RBAC (yours)", "info", f"you may not read Secrets in {self.ns}: the S3 check needs them")

    def s3(self) -> None:
        if self.config is None:
            self.add("S3", "skip", "no usable operator config")
            return
        profile_name = (self.policy or {}).get("spec", {}).get("s3CoordinationProfile")
        prof = self.config.profiles.get(profile_name) if profile_name else next(iter(self.config.profiles.values()))
        if prof is None:
            self.add("S3", "skip", f"no profile {profile_name!r}")
            return
        ref = prof.secret_ref
        try:
            sec = self.kube.core.read_namespaced_secret(ref.name, ref.namespace, _request_timeout=KUBE_TIMEOUT)
            creds = credentials_from_secret(self.kube.api.sanitize_for_serialization(sec))
        except ApiException as e:
            self.add("S3 credentials", "FAIL", f"Secret {ref.namespace}/{ref.name}: {kube_error(e)}",
                     f"kubectl -n {ref.namespace} create secret generic {ref.name} "
                     "--from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=...")
            return
        except S3PeerError as e:
            self.add("S3 credentials", "FAIL", f"Secret {ref.namespace}/{ref.name}: {e.message}",
                     "the Secret needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            return
        self.add("S3 credentials", "ok", f"Secret {ref.namespace}/{ref.name}")
        client = client_for_profile(prof, creds, S3_SETTINGS)
        try:
            resp = client.head_bucket(Bucket=prof.bucket)
        except Exception as e:
            try:
                err = classify(e, key=prof.bucket, operation="HeadBucket")
            except Exception:
                err = S3PeerError(f"{type(e).__name__}: {e}")
            self.add("S3", "FAIL", f"{prof.endpoint} bucket {prof.bucket}: {s3_error_text(err)}",
                     "check the endpoint, the bucket and the keys; `ramenctl doctor s3` tests conditional writes")
            return
        self.add("S3", "ok", f"{prof.endpoint} bucket {prof.bucket} answers")
        self._clock("S3", (resp.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get("date"))
        self.store = ObjectStore(client, prof.bucket)

    def quorum(self) -> None:
        """With dr-state over several stores: each store's conditional writes, and whether a majority is fit."""
        names = [str(n) for n in ((self.policy or {}).get("spec") or {}).get("s3CoordinationQuorum") or []]
        if not names or self.config is None:
            return
        majority = len(names) // 2 + 1
        fit: list[str] = []
        for name in names:
            prof = self.config.profiles.get(name)
            if prof is None:
                self.add(f"quorum store {name}", "FAIL", "not a profile of the operator config",
                         "add it to s3StoreProfiles of the RamenConfig on both clusters")
                continue
            ref = prof.secret_ref
            try:
                sec = self.kube.core.read_namespaced_secret(ref.name, ref.namespace, _request_timeout=KUBE_TIMEOUT)
                creds = credentials_from_secret(self.kube.api.sanitize_for_serialization(sec))
            except (ApiException, S3PeerError) as e:
                why = kube_error(e) if isinstance(e, ApiException) else e.message
                self.add(f"quorum store {name}", "FAIL", f"Secret {ref.namespace}/{ref.name}: {why}",
                         "the Secret needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
                continue
            result = probe(ObjectStore(client_for_profile(prof, creds, S3_SETTINGS), prof.bucket),
                           key_prefix=self.config.key_prefix, latency_samples=1)
            where = f"{prof.endpoint} bucket {prof.bucket}"
            if result.conditional_writes:
                fit.append(name)
                self.add(f"quorum store {name}", "ok", f"{where} honours conditional writes")
            else:
                detail = str(result.error) if result.error else "; ".join(
                    f"{n}: {d}" for n, ok, d in result.checks if not ok)
                self.add(f"quorum store {name}", "FAIL", f"{where}: {detail}",
                         "`ramenctl doctor s3` on that store says more")
        if len(fit) >= majority:
            self.add("quorum", "ok", f"{len(fit)} of {len(names)} stores fit; a majority of {majority} is reachable "
                     "(failover works)")
        else:
            self.add("quorum", "FAIL", f"{len(fit)} of {len(names)} stores fit; a majority of {majority} is needed: "
                     "roles are frozen", "bring a store back, or fix its profile")

    def heartbeats(self) -> None:
        if self.store is None or self.config is None:
            self.add("heartbeats", "skip", "S3 not reachable")
            return
        clusters = [str(c) for c in ((self.policy or {}).get("spec") or {}).get("drClusters") or []]
        me = self.cluster_name or self._deployment_cluster_name()
        keys = KeySchema(self.config.key_prefix)
        for c in clusters:
            who = "this cluster" if c == me else ("peer" if me else "cluster")
            name = f"heartbeat of {c} ({who})"
            try:
                obj = self.store.get(keys.health(c), max_bytes=env.MAX_OBJECT_BYTES)
                if not isinstance(obj, StoredObject):
                    self.add(name, "FAIL", "no heartbeat in S3", f"is the operator on {c} running and configured "
                             "with this bucket and key prefix?")
                    continue
                rec = decode_record(obj, Kind.HEALTH, Health.from_body, None)
            except S3PeerError as e:
                self.add(name, "FAIL", s3_error_text(e))
                continue
            written = datetime.strptime(rec.written_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            age = (datetime.now(UTC) - written).total_seconds()
            detail = f"{age:.0f}s old (sequence {rec.value.sequence}, operator {rec.value.operator_version})"
            if age > self.stale_after:
                self.add(name, "FAIL", f"stale: {detail}", f"check the operator on {c} (its logs, its S3 access); "
                         "the age is by this machine's clock")
            else:
                self.add(name, "ok", detail)

    def _deployment_cluster_name(self) -> str | None:
        try:
            dep = k8s.AppsV1Api(self.kube.api).read_namespaced_deployment(OPERATOR_NAME, self.ns,
                                                                          _request_timeout=KUBE_TIMEOUT)
        except Exception:  # no Deployment (operator run by hand): the name stays unknown
            return None
        for c in dep.spec.template.spec.containers:
            args = list(c.args or [])
            for i, a in enumerate(args):
                if a == "--cluster-name" and i + 1 < len(args):
                    return str(args[i + 1])
                if a.startswith("--cluster-name="):
                    return str(a.split("=", 1)[1])
        return None

    def _clock(self, what: str, date_header: str | None) -> None:
        # Information only: the protocol never compares two clusters' wall clocks.
        if not date_header:
            return
        try:
            theirs = email.utils.parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return
        offset = theirs - time.time()
        self.add(f"clock vs {what}", "info", f"{offset:+.0f}s (HTTP Date has 1s resolution; not used for decisions)")


def _attributes(rule: Rule, namespace: str | None) -> list[Any]:
    out = []
    for group in rule.api_groups:
        for res in rule.resources:
            resource, _, subresource = res.partition("/")
            for verb in rule.verbs:
                for name in rule.resource_names or (None,):
                    out.append(k8s.V1ResourceAttributes(group=group, resource=resource, subresource=subresource or None,
                                                        verb=verb, namespace=namespace, name=name))
    return out


def _describe(a: Any) -> str:
    res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    grp = f".{a.group}" if a.group else ""
    where = f" in {a.namespace}" if a.namespace else ""
    return f"{a.verb} {res}{grp}{' ' + a.name if a.name else ''}{where}"


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if not args.kubeconfig.is_file():
        raise CLIError(f"--kubeconfig: no such file {args.kubeconfig}")
    sa_text = args.service_account or f"{args.operator_namespace}/{OPERATOR_NAME}"
    sa_ns, sep, sa_name = sa_text.partition("/")
    if not sep or not sa_ns or not sa_name:
        raise CLIError(f"--service-account wants NAMESPACE/NAME, got {sa_text!r}")
    kube = kube_client(args.cluster_name or "cluster", args.kubeconfig)
    d = Doctor(kube, args.operator_namespace, (sa_ns, sa_name), args.cluster_name, args.stale_after)
    print(f"DR cluster {args.cluster_name or ''} ({args.kubeconfig})".replace("  ", " "), file=out)
    if d.api():
        d.guarded("CRDs", d.crds)
        d.guarded("operator config", d.operator_config)
        d.guarded("DRPolicy", d.dr_objects)
        d.guarded("RBAC", d.rbac)
        d.guarded("S3", d.s3)
        d.guarded("quorum", d.quorum)
        d.heartbeats()
    for c in d.checks:
        for line in c.lines():
            print(f"  {line}", file=out)
    failed = [c for c in d.checks if c.status == "FAIL"]
    print(f"{len(failed)} check{'s' * (len(failed) != 1)} failed." if failed else "All checks passed.", file=out)
    return EXIT_FAILED if failed else EXIT_OK
