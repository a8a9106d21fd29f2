"""ramenctl: operate and diagnose ramen-p2p."""

from __future__ import annotations

import argparse
import os
import sys

from reconciler import __version__
from reconciler.cli import actions, completion, doctor, doctor_cluster, migrate, render, status
from reconciler.cli.common import EXIT_FAILED, EXIT_USAGE, CLIError, rewrite_kubeconfig_flags
from reconciler.s3peer import S3PeerError

EPILOG = """\
examples:
  ramenctl status --kubeconfig-east east.kubeconfig --kubeconfig-west west.kubeconfig
  ramenctl status --endpoint https://s3.example.com --bucket ramen --clusters east,west -o wide
  ramenctl failover my-app/my-app-dr --to east --kubeconfig-east east.kubeconfig --wait
  ramenctl relocate my-app/my-app-dr --to west --kubeconfig-east e.kc --kubeconfig-west w.kc --wait
  ramenctl doctor cluster --kubeconfig east.kubeconfig
  ramenctl migrate --from hub-export/ --output-dir out/
  source <(ramenctl completion bash)

exit codes:
  0  success (status shown, action succeeded, every check passed)
  1  an action failed or was refused, a check failed
  2  usage or configuration error (bad flags, unreadable kubeconfig or credentials)
  3  timed out (--wait --timeout)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ramenctl", description="Operate and diagnose ramen-p2p.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ramenctl {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    status.add_parser(sub)
    actions.add_parsers(sub)
    doctor_cluster.add_parser(doctor.add_parser(sub))
    migrate.add_parser(sub)
    render.add_parser(sub)
    completion.add_parser(sub)
    return parser


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.cmd == "status":
        return status.run(args)
    if args.cmd in ("failover", "relocate", "cancel"):
        return actions.run(args)
    if args.cmd == "doctor" and args.doctor_cmd == "s3":
        return doctor.run_s3(args, sys.stdout)
    if args.cmd == "doctor" and args.doctor_cmd == "cluster":
        return doctor_cluster.run(args, sys.stdout)
    if args.cmd == "migrate":
        return migrate.run(args)
    if args.cmd == "render":
        return render.run(args, sys.stdout, sys.stderr)
    if args.cmd == "completion":
        return completion.run(args, parser, sys.stdout)
    parser.print_help()
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(rewrite_kubeconfig_flags(sys.argv[1:] if argv is None else argv))
        if args.cmd is None:
            parser.print_help()
            return EXIT_USAGE
        return _dispatch(parser, args)
    except CLIError as e:
        print(f"ramenctl: {e.message}", file=sys.stderr)
        return e.code
    except S3PeerError as e:
        print(f"ramenctl: S3: {e.reason}: {e.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        # Bad input must never end in a traceback; RAMENCTL_DEBUG=1 shows it for a bug report.
        if os.environ.get("RAMENCTL_DEBUG") == "1":
            raise
        print(f"ramenctl: unexpected error: {type(e).__name__}: {e} (RAMENCTL_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
