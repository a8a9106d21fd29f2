"""Benchmark of dr-state with one store and with three (a script that prints figures, not a test).

It starts its own S3 servers (the local environment's versitygw, in a temporary directory), then
for `--apps` apps measures, per cluster and per app: the S3 requests and latency of the initial
claim, of a failover (the target reads dr-state, then transitions), of a steady read (nothing
changed: conditional GETs), and of a failover with one store of three down.

    .venv/bin/python bench/bench_quorum.py [--apps 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.localenv import up
from e2e.s3count import counting_store
from reconciler.s3peer import Action, AppKey, Coordinator, KeySchema
from reconciler.s3peer.quorum import QuorumDRState


def measure(op: Callable[[AppKey], Any], apps: list[AppKey], counts: list[Counter[str]]) -> tuple[float, float, str]:
    """Median latency (ms), requests per app, and the requests by kind per app."""
    latencies: list[float] = []
    for c in counts:
        c.clear()
    for app in apps:
        t0 = time.perf_counter()
        op(app)
        latencies.append(time.perf_counter() - t0)
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    per_app = sum(total.values()) / len(apps)
    kinds = ", ".join(f"{k} {v / len(apps):.1f}" for k, v in sorted(total.items()))
    return statistics.median(latencies) * 1000, per_app, kinds


def run(label: str, make: Callable[[str], tuple[Coordinator, list[Counter[str]]]], apps: list[AppKey],
        down: Callable[[], None] | None = None) -> None:
    east, east_counts = make("east")
    west, west_counts = make("west")
    rows: list[tuple[str, Callable[[AppKey], Any], list[Counter[str]]]] = [
        ("claim (east)", lambda a: east.claim_initial(a), east_counts)]
    rows.append(("steady read (west)", lambda a: west.read_dr_state(a), west_counts))

    def failover(a: AppKey) -> None:
        rec = west.read_dr_state(a)
        assert rec is not None
        assert west.transition(a, rec, Action.FAILOVER).won

    rows.append(("failover (west: read + transition)", failover, west_counts))
    rows.append(("steady read after (east)", lambda a: east.read_dr_state(a), east_counts))
    for name, op, counts in rows:
        if name.startswith("steady read ("):
            for a in apps:  # warm: the first read of each app is a full GET
                op(a)
        ms, per_app, kinds = measure(op, apps, counts)
        print(f"  {label:<28} {name:<36} {ms:7.1f} ms p50  {per_app:5.1f} requests/app  ({kinds})")
    if down is not None:
        down()

        def failover_back(a: AppKey) -> None:
            rec = east.read_dr_state(a)
            assert rec is not None
            assert east.transition(a, rec, Action.FAILOVER).won

        ms, per_app, kinds = measure(failover_back, apps, east_counts)
        print(f"  {label:<28} {'failover back, one store down':<36} {ms:7.1f} ms p50  {per_app:5.1f} requests/app"
              f"  ({kinds})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apps", type=int, default=50)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-quorum-"))
    env = up([], root=root, s3_servers=3)
    try:
        servers = [env.s3, *env.s3_extra]
        prefix = f"bench/{int(time.time())}/"

        def single(cluster: str) -> tuple[Coordinator, list[Counter[str]]]:
            store, counts = counting_store(servers[0])
            return Coordinator(store, cluster, keys=KeySchema(prefix + "one/")), [counts]

        def three(cluster: str) -> tuple[Coordinator, list[Counter[str]]]:
            pairs = [counting_store(s) for s in servers]
            stores = [s for s, _ in pairs]
            keys = KeySchema(prefix + "three/")
            quorum = QuorumDRState(stores, cluster, keys=keys)
            return Coordinator(stores[0], cluster, keys=keys, quorum=quorum), [c for _, c in pairs]

        apps = [AppKey("bench", f"app-{i}") for i in range(args.apps)]
        print(f"dr-state operations, {args.apps} apps, local versitygw servers (loopback), sequential requests")
        run("1 store", single, apps)
        run("3 stores (quorum)", three, apps, down=lambda: env.stop(env.s3_extra[0]["component"]))
    finally:
        env.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
