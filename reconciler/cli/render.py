"""`ramenctl render install|crds`: print the YAML that installs ramen-p2p on one DR cluster."""

from __future__ import annotations

import argparse
from typing import TextIO

from reconciler.install import (
    DEFAULT_IMAGE,
    InstallError,
    InstallOptions,
    credentials_from_env,
    render_crds,
    render_install,
)

EPILOG = """\
The S3 credentials Secret is not rendered unless --s3-credentials-from-env is given (then
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are read from the environment); otherwise the bundle
says how to create it with kubectl. Example:

  ramenctl render crds | kubectl apply -f -
  ramenctl render install --cluster-name east --peer west --s3-endpoint https://s3.example.com \\
      --with-policy --no-crds | kubectl apply -f -
"""


def _cidrs(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = subparsers.add_parser("render", help="print installation manifests")
    which = render.add_subparsers(dest="render_cmd", metavar="WHAT", required=True)
    which.add_parser("crds", help="our CustomResourceDefinitions only")
    p = which.add_parser("install", help="everything one DR cluster needs",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    d = InstallOptions("", "", "")
    p.add_argument("--cluster-name", required=True, help="the DR cluster this bundle is applied to")
    p.add_argument("--peer", required=True, help="the other DR cluster")
    p.add_argument("--s3-endpoint", required=True, help="S3 endpoint URL shared by both clusters")
    p.add_argument("--s3-bucket", default=d.s3_bucket, help=f"coordination bucket (default {d.s3_bucket})")
    p.add_argument("--s3-region", default=d.s3_region, help=f"S3 region (default {d.s3_region})")
    p.add_argument("--s3-profile", default=d.s3_profile, help=f"s3StoreProfiles name (default {d.s3_profile})")
    p.add_argument("--s3-secret-name", default=d.s3_secret_name,
                   help=f"Secret holding the S3 keys (default {d.s3_secret_name})")
    p.add_argument("--s3-credentials-from-env", action="store_true",
                   help="render that Secret from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
    p.add_argument("--hmac-secret-name", default=None,
                   help="Secret (key hmacKey) that signs coordination objects; the same on both clusters")
    p.add_argument("--volsync-seed-secret-name", default=None,
                   help="Secret (key seed, at least 32 bytes) each app's VolSync PSK is derived from; the same "
                        "on both clusters")
    p.add_argument("--with-flux", action="store_true",
                   help="let the operator own the Flux Kustomizations DRControls name in "
                        "spec.application.fluxKustomization (RBAC on kustomize.toolkit.fluxcd.io kustomizations)")
    p.add_argument("--peer-api-server", default=None,
                   help="https URL of the peer's API server, to nudge its operator after coordination writes")
    p.add_argument("--peer-kubeconfig-secret", default=None,
                   help="Secret (key kubeconfig) with credentials that may patch DRControls on the peer")
    p.add_argument("--namespace", default=d.namespace, help=f"operator namespace (default {d.namespace})")
    p.add_argument("--image", default=DEFAULT_IMAGE, help=f"operator image (default {DEFAULT_IMAGE})")
    p.add_argument("--replicas", type=int, default=d.replicas, help="operator replicas, 1 to 3 (leader elected)")
    p.add_argument("--key-prefix", default=d.key_prefix, help="prefix of the coordination keys in the bucket")
    p.add_argument("--schedule-interval", default=d.schedule_interval,
                   help=f"DRPolicy schedulingInterval (default {d.schedule_interval})")
    p.add_argument("--with-policy", action="store_true", help="also render the DRPolicy of the pair")
    p.add_argument("--with-monitoring", action="store_true",
                   help="also render a ServiceMonitor, the PrometheusRule with the alerts and the Grafana dashboard")
    p.add_argument("--cidrs", type=_cidrs, default=(), help="comma-separated CIDRs of this cluster (fencing)")
    p.add_argument("--peer-cidrs", type=_cidrs, default=(), help="comma-separated CIDRs of the peer (fencing)")
    p.add_argument("--peer-poll-interval", default=d.peer_poll_interval, help="operator flag (default 30s)")
    p.add_argument("--heartbeat-interval", default=d.heartbeat_interval, help="operator flag (default 60s)")
    p.add_argument("--include-crds", dest="include_crds", action=argparse.BooleanOptionalAction, default=True,
                   help="include our CRDs (default yes)")
    p.add_argument("--no-crds", dest="include_crds", action="store_false", help="same as --no-include-crds")


def options_from_args(args: argparse.Namespace) -> InstallOptions:
    return InstallOptions(
        cluster_name=args.cluster_name,
        peer=args.peer,
        s3_endpoint=args.s3_endpoint,
        s3_bucket=args.s3_bucket,
        s3_region=args.s3_region,
        s3_profile=args.s3_profile,
        s3_secret_name=args.s3_secret_name,
        namespace=args.namespace,
        image=args.image,
        key_prefix=args.key_prefix,
        schedule_interval=args.schedule_interval,
        include_crds=args.include_crds,
        with_policy=args.with_policy,
        with_monitoring=args.with_monitoring,
        replicas=args.replicas,
        hmac_secret_name=args.hmac_secret_name,
        volsync_seed_secret_name=args.volsync_seed_secret_name,
        with_flux=args.with_flux,
        peer_api_server=args.peer_api_server,
        peer_kubeconfig_secret=args.peer_kubeconfig_secret,
        cidrs=args.cidrs,
        peer_cidrs=args.peer_cidrs,
        peer_poll_interval=args.peer_poll_interval,
        heartbeat_interval=args.heartbeat_interval,
        credentials=credentials_from_env() if args.s3_credentials_from_env else None,
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print the requested YAML; exit code 2 with a one-line reason on bad input."""
    try:
        text = render_crds() if args.render_cmd == "crds" else render_install(options_from_args(args))
    except InstallError as e:
        print(f"ramenctl render {args.render_cmd}: {e}", file=err)
        return 2
    out.write(text)
    return 0
