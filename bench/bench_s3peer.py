"""Benchmark of the S3 peer protocol's request cost (a script, not a test).

For 10, 100, 1,000 and 5,000 protected apps it measures, against the local S3
server, the S3 requests one cluster makes per poll cycle to read its peer (in
steady state and after one app changed) and the poll latency, and prices a
month of coordination at AWS list prices next to the seed's literal design
(every app's cluster-status written and read every 30 s).

    .venv/bin/python bench/bench_s3peer.py [--apps 10,100,1000,5000] [--settings .localenv/s3.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.s3count import counting_store
from reconciler.s3peer import (
    AppKey,
    ClusterStatus,
    Coordinator,
    KeySchema,
    ObjectStore,
    PeerReader,
    Role,
)

PUT_PRICE = 0.005 / 1000  # PUT, COPY, POST, LIST per request
GET_PRICE = 0.0004 / 1000  # GET and all other requests
POLL_S, HEARTBEAT_S = 30, 60
MONTH_S = 30 * 24 * 3600


def monthly_ours(reads_per_poll: float) -> float:
    """Per cluster: `reads_per_poll` GETs every poll, one heartbeat PUT per interval, no status rewrites."""
    polls, beats = MONTH_S / POLL_S, MONTH_S / HEARTBEAT_S
    return polls * reads_per_poll * GET_PRICE + beats * PUT_PRICE


def monthly_seed(apps: int) -> float:
    """Per cluster, the seed's literal design: every status written and every peer status read each 30 s,
    plus the 60 s heartbeat and reading the peer's heartbeat each poll."""
    polls, beats = MONTH_S / POLL_S, MONTH_S / HEARTBEAT_S
    return polls * apps * (PUT_PRICE + GET_PRICE) + beats * PUT_PRICE + polls * GET_PRICE


def timed_poll(reader: PeerReader, counts: Counter[str]) -> tuple[int, float]:
    counts.clear()
    t0 = time.perf_counter()
    reader.poll()
    return sum(counts.values()), time.perf_counter() - t0


def run(settings: dict[str, str], apps: int, prefix: str) -> dict[str, Any]:
    keys = KeySchema(prefix)
    east_store, east_counts = counting_store(settings)
    west_store, west_counts = counting_store(settings)
    east = Coordinator(east_store, "east", keys=keys)
    app_keys = [AppKey(f"ns-{i % 50}", f"app-{i}") for i in range(apps)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda a: east.write_cluster_status(a, ClusterStatus(Role.PRIMARY, 1, {"dataReady": True}),
                                                          flush_digest=False), app_keys))
    east.heartbeat(operator_version="bench")
    reader = PeerReader(west_store, "east", keys=keys, fetch_workers=16)
    cold_requests, cold_latency = timed_poll(reader, west_counts)

    steady = [timed_poll(reader, west_counts) for _ in range(5)]
    steady_requests = max(r for r, _ in steady)

    changed: list[tuple[int, float]] = []
    write_requests: list[int] = []
    put_bytes: list[int] = []

    def count_bytes(params: dict[str, Any], **_: Any) -> None:
        body = params["body"]
        put_bytes.append(len(body) if isinstance(body, bytes) else len(body.getvalue()))

    east.store.client.meta.events.register("before-call.s3.PutObject", count_bytes)
    written: list[int] = []
    for i in range(3):
        east_counts.clear()
        put_bytes.clear()
        east.write_cluster_status(app_keys[i], ClusterStatus(Role.SECONDARY_READY, 1, {"dataReady": True}))
        write_requests.append(sum(east_counts.values()))
        written.append(sum(put_bytes))
        changed.append(timed_poll(reader, west_counts))
    # The digest is an index and pages (reconciler/s3peer/digestpages.py): all of them, together.
    digest_size = sum(int(west_store.client.head_object(Bucket=west_store.bucket, Key=k)["ContentLength"])
                      for k in west_store.list_keys(keys.digest("east")))
    return {
        "apps": apps,
        "cold_requests": cold_requests,
        "cold_ms": cold_latency * 1000,
        "steady_requests": steady_requests,
        "steady_ms": statistics.median(t for _, t in steady) * 1000,
        "changed_requests": max(r for r, _ in changed),
        "changed_ms": statistics.median(t for _, t in changed) * 1000,
        "writer_requests_per_change": max(write_requests),
        "digest_kib": digest_size / 1024,
        "change_kib": max(written) / 1024,
    }


def cleanup(settings: dict[str, str], prefix: str) -> int:
    store = ObjectStore.from_settings(settings)
    keys = store.list_keys(prefix)
    for i in range(0, len(keys), 1000):
        store.client.delete_objects(Bucket=store.bucket,
                                    Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
    return len(keys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apps", default="10,100,1000,5000")
    ap.add_argument("--settings", default=str(Path(__file__).resolve().parents[1] / ".localenv" / "s3.json"))
    args = ap.parse_args(argv)
    settings: dict[str, str] = json.loads(Path(args.settings).read_text())
    prefix = f"bench/s3peer-{uuid.uuid4().hex[:8]}/"
    rows = []
    try:
        for n in (int(x) for x in args.apps.split(",")):
            rows.append(run(settings, n, f"{prefix}{n}/"))
            print(f"... {n} apps measured", file=sys.stderr, flush=True)
    finally:
        removed = cleanup(settings, prefix)
        print(f"... removed {removed} benchmark objects under {prefix}", file=sys.stderr)

    print(f"Peer poll every {POLL_S} s, heartbeat every {HEARTBEAT_S} s; AWS list prices "
          "PUT/LIST $0.005/1k, GET $0.0004/1k; month = 30 days; cost per cluster pair (2 clusters).")
    head = (f"{'apps':>6} | {'req/poll steady':>15} | {'req/poll 1 changed':>18} | {'first poll':>10} | "
            f"{'poll ms steady':>14} | {'poll ms changed':>15} | {'digest KiB':>10} | {'KiB per change':>14} | "
            f"{'$/month ours':>12} | {'$/month seed':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ours = 2 * monthly_ours(r["steady_requests"])
        seed = 2 * monthly_seed(r["apps"])
        print(f"{r['apps']:>6} | {r['steady_requests']:>15} | {r['changed_requests']:>18} | "
              f"{r['cold_requests']:>10} | {r['steady_ms']:>14.1f} | {r['changed_ms']:>15.1f} | "
              f"{r['digest_kib']:>10.1f} | {r['change_kib']:>14.1f} | {ours:>12.2f} | {seed:>12.2f}")
    print("A status change costs the writer "
          f"{max(r['writer_requests_per_change'] for r in rows)} PUTs (the status and the digest) and the reader "
          "one extra GET; the seed design pays N PUTs + N GETs per cluster every poll whether or not anything changed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
