"""Benchmark of DR actions: time from setting the action to ReadyForApplication=True on the target.

    .venv/bin/python bench/bench_actions.py [--polls 1,2,5] [--runs 3] [--sim-delay 0.5]

Starts a private environment in a temporary directory (two clusters and an S3 server on
free ports, stopped at the end, also on Ctrl-C and errors). For each poll interval
(heartbeat = poll) it starts both operators and both VRG simulators, protects one app
(east Primary) and alternates the target between west and east: `--runs` relocates, then
`--runs` failovers with both operators alive. The action is set on both clusters, as
GitOps would. Each run waits until the previous one has settled (old Primary's VRG
Secondary) so every action starts from a steady state.

A total splits in two:
- simulator share: the VRG simulator's configured delay times the VRG spec changes on the
  critical path. From the simulators' timelines, the chain runs backwards from the
  target's last spec change before Ready: an earlier spec change in the run is on the
  chain when the simulator's report for it came before the next change on the chain (it
  could have been waited for). Relocate: old Primary demoted, then the target promoted (2).
  Failover: the target promoted (1); the old Primary demotes off the critical path.
- coordination share: the rest (S3 polls, heartbeats, reconciles, API writes, and the
  simulator's own 0.2 s polling, which Ramen's VRG controller would not have).

Readiness is sampled every 50 ms, so totals carry up to that much extra.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv import LocalEnv, private
from e2e.localenv.clients import Cluster, kube_cluster

CLUSTERS = ("east", "west")
SAMPLE_S = 0.05


@dataclass(frozen=True)
class Run:
    action: str
    poll: float
    total: float
    spec_changes: int
    sim_delay: float

    @property
    def sim_share(self) -> float:
        return self.spec_changes * self.sim_delay

    @property
    def coordination(self) -> float:
        return self.total - self.sim_share


def critical_spec_changes(events: list[dict[str, Any]], namespace: str, target: str, t0: float,
                          t_ready: float) -> int:
    """VRG spec changes on the critical path of one action (see the module docstring)."""
    mine = [e for e in events if e["namespace"] == namespace and e["t"] >= t0]
    specs = [e for e in mine if e["event"] == "spec" and e["t"] <= t_ready]
    # Not bounded by t_ready: the simulator stamps a report after its status write returns, and the
    # operator may already have acted on it by then.
    reports = [e for e in mine if e["event"] == "status"]

    def reported_at(spec: dict[str, Any]) -> float | None:
        """When the simulator acted on `spec`: its first report on that cluster at that VRG generation."""
        later = [r for r in reports if r["cluster"] == spec["cluster"] and r["generation"] == spec["generation"]
                 and r["t"] >= spec["t"]]
        return min((r["t"] for r in later), default=None)

    last = next((s for s in reversed(specs) if s["cluster"] == target and reported_at(s) is not None), None)
    chain = 0
    while last is not None:
        chain += 1
        nxt = last
        last = max((s for s in specs if s["t"] < nxt["t"] and (reported_at(s) or float("inf")) <= nxt["t"]),
                   key=lambda s: s["t"], default=None)
    return chain


@dataclass
class Bench:
    env: LocalEnv
    clusters: dict[str, Cluster]
    sim_delay: float
    logroot: Path
    verbose: bool = False

    def _ns(self, name: str) -> None:
        for c in self.clusters.values():
            c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def settled(self, ns: str, primary: str, gen: int) -> bool:
        for name, c in self.clusters.items():
            drc = harness.get_drc(c, ns)
            st = drc.get("status") or {}
            if st.get("generation") != gen or st.get("currentPrimary") != primary:
                return False
            vrg_state = ((harness.get_vrg(c, ns) or {}).get("status") or {}).get("state")
            if name == primary:
                if not harness.ready_for_application(drc) or vrg_state != "Primary":
                    return False
            elif harness.ready_for_application(drc) or vrg_state != "Secondary":
                return False
        return True

    def ready_on(self, ns: str, target: str, gen: int) -> bool:
        st = harness.get_drc(self.clusters[target], ns)
        s = st.get("status") or {}
        return bool(s.get("currentPrimary") == target and s.get("generation") == gen
                    and harness.ready_for_application(st))

    def poll_interval(self, poll: float, runs: int) -> list[Run]:
        """All runs at one poll interval, with operators and simulators of their own."""
        timing = harness.Timing(poll=f"{poll:g}s", heartbeat=f"{poll:g}s", stale_after=f"{6 * poll:g}s",
                                sim_delay=self.sim_delay)
        logdir = self.logroot / f"poll-{poll:g}s"
        logdir.mkdir(parents=True)
        ns = f"bench-{poll:g}s-{secrets.token_hex(3)}".replace(".", "-")
        self._ns(ns)
        procs = [harness.simulator_process(n, c.kubeconfig, self.env.s3_config_file(), logdir, timing)
                 for n, c in self.clusters.items()]
        procs += [harness.operator_process(n, c.kubeconfig, logdir, timing) for n, c in self.clusters.items()]
        out: list[Run] = []
        try:
            for p in procs:
                p.start()
            for c in self.clusters.values():
                c.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, ns, "drcontrols",
                                                         harness.drcontrol(ns, preferred="east"))
            self._wait(lambda: self.settled(ns, "east", 1), 60 + 10 * poll, "east Primary at generation 1",
                       procs)
            primary, gen = "east", 1
            for action in ("Relocate", "Failover"):
                for _ in range(runs):
                    target = "west" if primary == "east" else "east"
                    t0 = time.time()
                    for c in self.clusters.values():
                        harness.set_action(c, ns, action, target)
                    gen += 1
                    total = self._wait(partial(self.ready_on, ns, target, gen), 60 + 20 * poll,
                                       f"{action} to {target} ready", procs)
                    t_ready = t0 + total
                    # Timelines are flushed per event; give the last report a moment to land.
                    time.sleep(0.3)
                    changes = critical_spec_changes(harness.timeline(logdir), ns, target, t0, t_ready)
                    run = Run(action, poll, total, changes, self.sim_delay)
                    out.append(run)
                    if self.verbose:
                        print(f"  {action:<8} poll {poll:g}s -> {target}: {total:.2f}s "
                              f"({changes} spec change(s) on the critical path)", flush=True)
                    self._wait(partial(self.settled, ns, target, gen), 60 + 20 * poll,
                               f"settled after {action} to {target}", procs)
                    primary = target
        finally:
            for p in reversed(procs):
                p.stop()
            for c in self.clusters.values():
                harness.force_delete_drcontrols(c, ns)
        return out

    @staticmethod
    def _wait(pred: Callable[[], bool], timeout: float, what: str, procs: list[harness.Process]) -> float:
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                if pred():
                    return time.time() - t0
            except (ApiException, KeyError):
                pass
            time.sleep(SAMPLE_S)
        tails = "\n".join(f"--- {p.name} ---\n{p.tail(10)}" for p in procs)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def table(runs: list[Run]) -> str:
    rows = [("action", "poll", "runs", "median s", "max s", "simulator s", "coordination s (median)")]
    keys = sorted({(r.action, r.poll) for r in runs}, key=lambda k: (k[0] != "Relocate", k[1]))
    for action, poll in keys:
        rs = [r for r in runs if r.action == action and r.poll == poll]
        changes = statistics.median(r.spec_changes for r in rs)
        rows.append((action, f"{poll:g}s", str(len(rs)), f"{statistics.median(r.total for r in rs):.2f}",
                     f"{max(r.total for r in rs):.2f}",
                     f"{statistics.median(r.sim_share for r in rs):.2f} ({changes:g} x {rs[0].sim_delay:g})",
                     f"{statistics.median(r.coordination for r in rs):.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def private_env(root: Path) -> AbstractContextManager[LocalEnv]:
    return private(list(CLUSTERS), root)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--polls", default="1,2,5", help="peer poll intervals in seconds (heartbeat = poll)")
    p.add_argument("--runs", type=int, default=3, help="runs per action and poll interval")
    p.add_argument("--sim-delay", type=float, default=0.5, help="VRG simulator delay before acting on a spec")
    p.add_argument("--keep-logs", action="store_true", help="keep operator and simulator logs (path printed)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each run")
    p.add_argument("--nudge", action="store_true",
                   help="give both DRClusters a peerEndpoint, so each operator nudges the other after writing")
    args = p.parse_args(argv)
    polls = [float(x) for x in args.polls.split(",") if x]
    logroot = Path(tempfile.mkdtemp(prefix="bench-actions-logs-"))
    started = time.monotonic()
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-actions-env-") as tmp, private_env(Path(tmp) / "env") as env:
            clusters = {n: kube_cluster(n, env.kubeconfig(n)) for n in CLUSTERS}
            peers = {n: env.kubeconfig(n) for n in CLUSTERS} if args.nudge else None
            for c in clusters.values():
                harness.configure_cluster(c, env.s3, peer_kubeconfigs=peers)
            bench = Bench(env, clusters, args.sim_delay, logroot, args.verbose)
            for poll in polls:
                runs += bench.poll_interval(poll, args.runs)
    finally:
        if args.keep_logs:
            print(f"\nlogs: {logroot}")
        else:
            shutil.rmtree(logroot, ignore_errors=True)
    mode = "with" if args.nudge else "without"
    print(f"\n{mode} nudges; simulator delay {args.sim_delay:g}s; {len(runs)} actions in "
          f"{time.monotonic() - started:.0f}s (environment start and settling included)\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
