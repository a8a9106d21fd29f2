"""python -m e2e.localenv build|up|down|status"""

from __future__ import annotations

import argparse
import sys

from e2e.localenv import build
from e2e.localenv.env import LocalEnv, StartError, down, up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.localenv", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build kube-apiserver, kube-controller-manager, kubectl, etcd, the S3 server "
                                 "and Ramen's manager (cached)")
    p_up = sub.add_parser("up", help="start the clusters and the S3 server (idempotent)")
    p_up.add_argument("--clusters", default="east,west", help="comma-separated cluster names")
    p_up.add_argument("--controller-manager", action="store_true",
                      help="also run kube-controller-manager per cluster (PVC binding, namespace deletion, GC)")
    p_up.add_argument("--ramen", action="store_true",
                      help="also run Ramen's manager per cluster in dr-cluster mode (implies --controller-manager)")
    p_up.add_argument("--s3", type=int, default=1, metavar="N",
                      help="S3 servers to run (3: one per site and a witness, for dr-state over a quorum)")
    sub.add_parser("down", help="stop what 'up' started and remove its state")
    sub.add_parser("status", help="say what runs")
    args = parser.parse_args(argv)

    try:
        if args.cmd == "build":
            build.build()
        elif args.cmd == "up":
            names = [c.strip() for c in args.clusters.split(",") if c.strip()]
            if not names:
                parser.error("--clusters needs at least one name")
            if args.s3 < 1:
                parser.error("--s3 needs at least 1")
            up(names, controller_manager=args.controller_manager, with_ramen=args.ramen, s3_servers=args.s3)
        elif args.cmd == "down":
            down()
        else:
            print("\n".join(LocalEnv.load().status_lines()))
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
