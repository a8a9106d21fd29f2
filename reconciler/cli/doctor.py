"""`ramenctl doctor s3`: is this S3 store fit for peer coordination?"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TextIO

from reconciler.s3peer import (
    ClientSettings,
    ObjectStore,
    ProbeResult,
    S3PeerError,
    credentials_from_env,
    make_client,
    probe,
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """`doctor` and `doctor s3`; returns the TARGET subparsers so other checks can be added."""
    doctor = subparsers.add_parser("doctor", help="diagnose the environment ramen-p2p depends on")
    which = doctor.add_subparsers(dest="doctor_cmd", metavar="TARGET", required=True)
    s3 = which.add_parser(
        "s3",
        help="check that an S3 store honours conditional writes and answers quickly",
        description="Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).",
    )
    s3.add_argument("--endpoint", required=True, help="S3 endpoint URL, e.g. https://s3.example.com")
    s3.add_argument("--bucket", required=True, help="the coordination bucket")
    s3.add_argument("--region", default="us-east-1", help="S3 region (default us-east-1)")
    s3.add_argument("--key-prefix", default="", help="key prefix the probe objects go under")
    s3.add_argument("--max-latency", type=float, default=1.0, help="highest acceptable median round trip, seconds")
    return which


def render(result: ProbeResult, endpoint: str, bucket: str) -> list[str]:
    lines = [f"S3 store {endpoint} bucket {bucket}"]
    for name, ok, detail in result.checks:
        lines.append(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    if result.error is not None:
        lines.append(f"  [FAIL] {result.error.reason}: {result.error.message}")
    median = result.median_latency
    if median is not None:
        lines.append(
            f"  [{'ok' if result.latency_ok else 'FAIL'}] latency: median {median * 1000:.1f} ms, "
            f"max {max(result.latencies) * 1000:.1f} ms over {len(result.latencies)} requests "
            f"(limit {result.max_median_latency * 1000:.0f} ms)"
        )
    if result.fit:
        lines.append("Verdict: FIT for peer coordination.")
    else:
        lines.append(f"Verdict: NOT FIT for peer coordination ({result.reason}).")
    return lines


def run_s3(args: argparse.Namespace, out: TextIO, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    try:
        creds = credentials_from_env(env)
    except S3PeerError as e:
        print(f"Verdict: NOT CHECKED: {e.message}", file=out)
        return 2
    # Short timeouts and a single retry: a doctor should answer quickly, not hang on a dead endpoint.
    client = make_client(args.endpoint, args.region, creds,
                         ClientSettings(connect_timeout=2.0, read_timeout=5.0, max_attempts=2))
    result = probe(ObjectStore(client, args.bucket), key_prefix=args.key_prefix, max_median_latency=args.max_latency)
    for line in render(result, args.endpoint, args.bucket):
        print(line, file=out)
    return 0 if result.fit else 1
