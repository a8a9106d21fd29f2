"""ramen-operator: the unified DR operator that runs on each DR cluster."""

from __future__ import annotations

import argparse
import sys

from reconciler import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ramen-operator", description="The ramen-p2p DR operator.")
    parser.add_argument("--version", action="version", version=f"ramen-operator {__version__}")
    parser.add_argument("--cluster-name", required=True, help="name of the DR cluster this operator runs on")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig path (in-cluster config when omitted)")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("ramen-operator: the controllers are not wired yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
