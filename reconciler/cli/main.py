"""ramenctl: operate and diagnose ramen-p2p."""

from __future__ import annotations

import argparse
import sys

from reconciler import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ramenctl", description="Operate and diagnose ramen-p2p.")
    parser.add_argument("--version", action="version", version=f"ramenctl {__version__}")
    parser.add_subparsers(dest="cmd", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
