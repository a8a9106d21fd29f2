"""Leader election between separate processes sharing one Lease on the shared API server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.localenv.clients import Cluster

pytestmark = pytest.mark.realenv

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3.0, 2.0, 0.5

CANDIDATE = """
import logging, signal, sys, threading, time
from kubernetes import config
from reconciler.kube import KubeClient, LeaderElector, LeaseConfig

kubeconfig, namespace, identity, log_path = sys.argv[1:5]
lease_duration, renew_deadline, retry_period = map(float, sys.argv[5:8])
logging.basicConfig(level=logging.WARNING)
client = KubeClient(config.new_client_from_config(config_file=kubeconfig))

def lead(stop: threading.Event) -> None:
    # The "work" of a leader: stamp the shared log while leading.
    with open(log_path, "a", buffering=1) as log:
        while not stop.is_set():
            log.write(f"{identity} {time.time():.3f}\\n")
            stop.wait(0.05)

elector = LeaderElector(client, LeaseConfig("ramen-test-leader", namespace, identity,
                                            lease_duration, renew_deadline, retry_period), lead)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
elector.start()
print("campaigning", flush=True)
done.wait()
elector.stop()
print("released", flush=True)
"""


def spawn(tmp_path: Path, east: Cluster, namespace: str, identity: str, log: Path) -> subprocess.Popen[str]:
    script = tmp_path / "candidate.py"
    script.write_text(CANDIDATE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    args = [str(east.kubeconfig), namespace, identity, str(log), str(LEASE_DURATION), str(RENEW_DEADLINE),
            str(RETRY_PERIOD)]
    proc = subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "campaigning"
    return proc


def stamps(log: Path) -> list[tuple[str, float]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        who, _, t = line.partition(" ")
        if t:
            out.append((who, float(t)))
    return out


def wait_for_leader(log: Path, identity: str, after: float, timeout: float) -> float:
    """The first time `identity` acted after `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        times = [t for who, t in stamps(log) if who == identity and t > after]
        if times:
            return min(times)
        time.sleep(0.05)
    raise AssertionError(f"{identity} did not become leader within {timeout}s")


def test_leadership_hands_over_on_sigkill_and_on_release(tmp_path: Path, east: Cluster, namespace: str) -> None:
    log = tmp_path / "acts.log"
    procs: list[subprocess.Popen[str]] = []
    try:
        a = spawn(tmp_path, east, namespace, "a", log)
        procs.append(a)
        wait_for_leader(log, "a", 0, timeout=10)
        b = spawn(tmp_path, east, namespace, "b", log)
        procs.append(b)
        time.sleep(2 * LEASE_DURATION)  # b campaigns all along but must not act while a holds the lease
        assert {who for who, _ in stamps(log)} == {"a"}

        killed_at = time.time()
        a.send_signal(signal.SIGKILL)  # no chance to release: b must wait for the lease to expire
        a.wait()
        b_first = wait_for_leader(log, "b", killed_at, timeout=LEASE_DURATION + 5)
        handover = b_first - killed_at
        print(f"handover after SIGKILL: {handover:.2f}s (lease {LEASE_DURATION}s, retry {RETRY_PERIOD}s)")
        # The lease may have been renewed just before the kill; add one retry period for b's polling.
        assert handover <= LEASE_DURATION + 2 * RETRY_PERIOD
        a_times = [t for who, t in stamps(log) if who == "a"]
        assert max(a_times) < b_first, "two leaders acted at once"

        c = spawn(tmp_path, east, namespace, "c", log)
        procs.append(c)
        time.sleep(1.0)
        released_at = time.time()
        b.send_signal(signal.SIGTERM)  # clean shutdown releases the lease
        assert b.wait(10) == 0
        c_first = wait_for_leader(log, "c", released_at, timeout=LEASE_DURATION + 5)
        print(f"handover after release: {c_first - released_at:.2f}s")
        assert c_first - released_at < LEASE_DURATION, "a released lease was waited out instead of taken"
        b_times = [t for who, t in stamps(log) if who == "b"]
        assert max(b_times) < c_first, "two leaders acted at once"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
