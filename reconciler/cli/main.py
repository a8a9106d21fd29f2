"""ramenctl: operate and diagnose ramen-p2p."""

from __future__ import annotations

import argparse
import sys

from reconciler import __version__
from reconciler.cli import doctor, render


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ramenctl", description="Operate and diagnose ramen-p2p.")
    parser.add_argument("--version", action="version", version=f"ramenctl {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    doctor.add_parser(sub)
    render.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    if args.cmd == "doctor" and args.doctor_cmd == "s3":
        return doctor.run_s3(args, sys.stdout)
    if args.cmd == "render":
        return render.run(args, sys.stdout, sys.stderr)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
