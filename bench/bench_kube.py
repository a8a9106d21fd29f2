"""Benchmark of the kube runtime: informer initial sync time and RSS, and work queue throughput.

    .venv/bin/python bench/bench_kube.py [--sizes 1000,10000] [--workers 1,4,8]

Starts a private cluster in a temporary directory (stopped at the end), fills
it with custom objects, and measures a fresh informer in a child process per
size so each RSS figure starts from a clean interpreter.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import config

from e2e.widgets import widget_kind
from reconciler.kube import NAMESPACES, Informer, KubeClient, WorkQueue
from reconciler.kube.crds import ensure_crd

WIDGETS, CRD = widget_kind("bench.ramen-p2p.io")
NAMESPACE = "bench"


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def client_for(kubeconfig: str) -> KubeClient:
    api = config.new_client_from_config(config_file=kubeconfig)
    api.configuration.connection_pool_maxsize = 32
    api.rest_client = type(api.rest_client)(api.configuration)  # rebuild the pool with the larger size
    return KubeClient(api)


def fill(client: KubeClient, start: int, stop: int, threads: int = 16) -> float:
    """Create widgets start..stop-1 in parallel; return the seconds it took."""
    def create(i: int) -> None:
        client.create(WIDGETS, {
            "apiVersion": WIDGETS.api_version, "kind": "Widget",
            "metadata": {"name": f"w{i:05d}", "namespace": NAMESPACE, "labels": {"app": f"app-{i % 50}"}},
            "spec": {"size": i, "policy": f"policy-{i % 7}", "clusters": ["east", "west"], "replicas": 3},
        })
    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(start, stop)))
    return time.monotonic() - t0


def measure_sync(kubeconfig: str) -> dict[str, float]:
    """Child process: one informer's initial list into the store, timed, with RSS before and after."""
    client = client_for(kubeconfig)
    before = rss_mib()
    inf = Informer(client, WIDGETS)
    t0 = time.monotonic()
    inf.start()
    inf.wait_for_sync(600)
    elapsed = time.monotonic() - t0
    after = rss_mib()
    objects = len(inf.store)
    inf.stop()
    return {"objects": objects, "sync_s": elapsed, "rss_mib": after, "rss_delta_mib": after - before}


def queue_throughput(workers: int, keys: int = 100_000) -> float:
    """Keys per second through add -> get -> done with `workers` threads and a trivial reconcile."""
    q = WorkQueue()
    done = threading.Event()
    processed = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal processed
        while (key := q.get()) is not None:
            q.done(key)
            with lock:
                processed += 1
                if processed == keys:
                    done.set()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for i in range(keys):
        q.add(f"ns/obj-{i}")
    done.wait()
    elapsed = time.monotonic() - t0
    q.shutdown()
    for t in threads:
        t.join()
    return keys / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--workers", default="1,4,8")
    parser.add_argument("--measure-sync", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_sync:
        print(json.dumps(measure_sync(args.measure_sync)))
        return 0

    from e2e.localenv import up

    print("work queue throughput (100,000 distinct keys, add -> get -> done):")
    for n in (int(w) for w in args.workers.split(",")):
        print(f"  {n:>2} workers: {queue_throughput(n):>10,.0f} keys/s")

    with tempfile.TemporaryDirectory(prefix="bench-kube-") as tmp:
        env = up(["bench"], root=Path(tmp))
        try:
            kubeconfig = str(env.kubeconfig("bench"))
            client = client_for(kubeconfig)
            ensure_crd(client, CRD)
            client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
            have = 0
            print("informer initial sync (fresh process per size; list pages of 500):")
            for size in (int(s) for s in args.sizes.split(",")):
                took = fill(client, have, size)
                print(f"  created {size - have} widgets in {took:.1f}s")
                have = size
                out = subprocess.run([sys.executable, __file__, "--measure-sync", kubeconfig],
                                     check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"  {int(r['objects']):>6} objects: sync {r['sync_s']:.2f}s, "
                      f"RSS {r['rss_mib']:.0f} MiB (+{r['rss_delta_mib']:.0f} MiB for the cache)")
        finally:
            env.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
