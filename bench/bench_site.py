"""Benchmark of a whole site: N apps protected, steady, failed over, the old Primary back, relocated.

    .venv/bin/python bench/bench_site.py [--apps 100] [--per-namespace 10] [--workers 16]
        [--poll 30s] [--heartbeat 60s] [--sim-delay 0.5] [--sim-workers 50] [--steady 60] [--nudge]
        [--json FILE]

Starts a private environment in a temporary directory (two clusters and an S3 server on free
ports, stopped at the end, also on Ctrl-C), both operators (metrics on a local port) and both
VRG simulators (each acting on up to `--sim-workers` VRGs at once, as Ramen's VRG controller runs
`maxConcurrentReconciles` reconciles), and runs five phases:

- protect: N DRControls created on both clusters (preferred east), until every app is Primary
  and ReadyForApplication on east and Secondary (VRG too) on west;
- steady: `--steady` seconds of nothing: CPU (share of one core), RSS, S3 and API requests per
  minute of each operator;
- failover: east's operator and simulator are killed (the site is gone) and Failover to west is
  set on every app on west; until every app is ReadyForApplication on west at generation 2;
- return: east's operator and simulator start again; until east has demoted every app;
- relocate: Relocate to east set on both clusters; until every app is back on east.

Per phase it prints the total (from the last request to the last app done, and from the first),
per-app p50/p95/max (from the app's own request), and S3 requests per app by kind of object and
API requests per app, both operators together. DRControls and VRGs are watched (one list, then a
watch per kind and cluster), so an app is done when the event that completes it arrives, and
the benchmark's own load on the API servers does not grow with the number of apps sampled.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import urllib3
from kubernetes import client, config, watch

from e2e import harness
from e2e.localenv import LocalEnv, private
from e2e.localenv.clients import Cluster, kube_cluster
from reconciler.durations import parse_duration

CLUSTERS = ("east", "west")
TICKS = os.sysconf("SC_CLK_TCK")
SERVER_LINE = re.compile(r'^apiserver_request_total\{([^}]*)\} (\S+)$')
SAMPLE_LINE = re.compile(r'^ramen_p2p_(s3_object_requests|kube_requests|reconcile|peer_nudges)_total\{([^}]*)\} (\S+)$')
#: Which label of each counter the figures are split by.
SPLIT_BY = {"s3_object_requests": ("s3", "object"), "kube_requests": ("api", "verb"),
            "reconcile": ("reconciles", "controller"), "peer_nudges": ("nudges", "outcome")}

# Per app on one cluster: (generation, currentPrimary, ReadyForApplication, VRG state reported)
View = tuple[int, str, bool, str]
AppId = tuple[str, str]  # (namespace, name)


def most_first(counts: dict[str, int] | dict[str, float], per: float = 1.0, digits: int = 1,
               at_least: float = 0.0) -> str:
    """"name value, ..." largest first, each value divided by `per` (e.g. the apps) and rounded."""
    return ", ".join(f"{k} {v / per:.{digits}f}" for k, v in sorted(counts.items(), key=lambda x: -x[1])
                     if v / per >= at_least)


def prom_labels(text: str) -> dict[str, str]:
    """The labels of one Prometheus sample line ('a="x",b="y"'), their quotes removed."""
    return {k: v.strip('"') for k, v in (kv.split("=", 1) for kv in text.split(","))}


@dataclass
class Phase:
    name: str
    apps: int
    total_from_last_request: float = 0.0
    total_from_first_request: float = 0.0
    per_app: list[float] = field(default_factory=list)
    s3_by_object: dict[str, int] = field(default_factory=dict)
    api_requests: int = 0
    api_by_verb: dict[str, int] = field(default_factory=dict)
    #: Reconciles by controller, both operators together.
    reconciles: dict[str, int] = field(default_factory=dict)
    #: Events the operators recorded during the phase, by reason (both clusters).
    events_by_reason: dict[str, int] = field(default_factory=dict)
    #: CPU seconds of the operators during the phase (both together).
    operator_cpu: float = 0.0
    #: Nudges by outcome (sent, coalesced, failed, skipped), both operators together.
    nudges: dict[str, int] = field(default_factory=dict)
    #: Per app, from its request to the `completedAt` its target's operator recorded in
    #: `status.lastAction` (whole seconds): what the operator took, whatever this process saw when.
    per_app_by_operator: list[float] = field(default_factory=list)
    #: CPU seconds during the phase of every process on the machine's cores: the servers of both
    #: clusters, the S3 server, the operators, the simulators and this benchmark itself.
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    #: What the API servers themselves served during the phase, from every client (operators,
    #: simulators, this benchmark), by "<resource>[/<subresource>] <VERB>"; watches left out.
    server_requests: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        q = sorted(self.per_app)
        p50 = statistics.median(q) if q else 0.0
        p95 = q[min(len(q) - 1, int(0.95 * len(q)))] if q else 0.0
        s3 = sum(self.s3_by_object.values())
        kinds = most_first(self.s3_by_object, self.apps)
        reconciles = self.reconciles.get("drcontrol", 0)
        events = most_first(self.events_by_reason, self.apps)
        verbs = most_first(self.api_by_verb, self.apps)
        served = most_first(self.server_requests, self.apps, at_least=0.05)
        cpu = most_first(self.cpu_by_process, self.apps / 1000, digits=0)
        by_operator = ""
        if self.per_app_by_operator:
            o = sorted(self.per_app_by_operator)
            by_operator = (f"; by lastAction.completedAt p50 {statistics.median(o):.1f} s  "
                           f"p95 {o[min(len(o) - 1, int(0.95 * len(o)))]:.1f} s")
        return (f"{self.name:<9} {self.total_from_last_request:7.1f} s ({self.total_from_first_request:.1f} s from the "
                f"first request)  per app p50 {p50:.1f} s  p95 {p95:.1f} s  max {max(q, default=0.0):.1f} s"
                f"{by_operator}\n"
                f"{'':<10}S3 {s3 / self.apps:.1f} requests per app ({kinds}); API {self.api_requests / self.apps:.1f} "
                f"requests per app ({verbs}); DRControl reconciles {reconciles / self.apps:.1f} per app; "
                f"operator CPU {1000 * self.operator_cpu / self.apps:.0f} ms per app"
                + (f"; nudges sent {self.nudges.get('sent', 0)} ({self.nudges.get('coalesced', 0)} writes "
                   f"coalesced into them)" if self.nudges else "") + "\n"
                f"{'':<10}Events per app: {events or 'none'}"
                + (f"\n{'':<10}API servers served, per app (all clients): {served}" if served else "")
                + (f"\n{'':<10}CPU in the phase, ms per app: {cpu} (wall {self.total_from_first_request:.0f} s)"
                   if cpu else ""))


@dataclass
class Steady:
    seconds: float
    per_operator: dict[str, dict[str, float]] = field(default_factory=dict)
    s3_by_object: dict[str, dict[str, int]] = field(default_factory=dict)
    api_by_verb: dict[str, dict[str, int]] = field(default_factory=dict)
    reconciles: dict[str, int] = field(default_factory=dict)
    #: What the API servers served in the window, from every client (see `Phase.server_requests`).
    server_requests: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = []
        for name, f in self.per_operator.items():
            kinds = most_first(self.s3_by_object.get(name, {}), digits=0)
            verbs = most_first(self.api_by_verb.get(name, {}), digits=0)
            out.append(f"steady    {name}: CPU {f['cpu_percent']:.2f}% of a core, RSS {f['rss_mib']:.0f} MiB, "
                       f"S3 {f['s3_per_minute']:.0f}/min ({kinds or 'none'} in {self.seconds:.0f} s), "
                       f"API {f['api_per_minute']:.0f}/min ({verbs or 'none'}), "
                       f"{self.reconciles.get(name, 0)} DRControl reconciles")
        served = most_first(self.server_requests, digits=0, at_least=1)
        out.append(f"steady    API servers served in {self.seconds:.0f} s (all clients): {served or 'nothing'}")
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> Counter[str]:
    """What an operator counted: "s3/<object>", "api/<verb>" and "reconciles/<controller>"."""
    out: Counter[str] = Counter()
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except OSError:
        return out  # a killed operator counts nothing more
    for line in text.splitlines():
        m = SAMPLE_LINE.match(line)
        if not m:
            continue
        prefix, label = SPLIT_BY[m.group(1)]
        out[f"{prefix}/{prom_labels(m.group(2)).get(label, '')}"] += int(float(m.group(3)))
    return out


def scrape_server(cluster: Cluster) -> Counter[str]:
    """The API server's own count of the requests it served, by resource[/subresource] and verb."""
    out: Counter[str] = Counter()
    try:
        resp = cluster.api.call_api("/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False,
                                    _request_timeout=10)
        text = resp[0].data.decode()
    except (OSError, client.ApiException, urllib3.exceptions.HTTPError):
        return out  # a server that cannot answer counts nothing
    for line in text.splitlines():
        m = SERVER_LINE.match(line)
        if not m:
            continue
        get = prom_labels(m.group(1)).get
        if not get("resource") or get("verb") == "WATCH":
            continue
        sub = f"/{get('subresource')}" if get("subresource") else ""
        out[f"{get('resource')}{sub} {get('verb')}"] += int(float(m.group(2)))
    return out


def part(counts: Counter[str], prefix: str) -> dict[str, int]:
    """The counts under one prefix of `scrape`, by the rest of their name."""
    return {k.split("/", 1)[1]: v for k, v in counts.items() if k.startswith(prefix + "/") and v}


class Observer:
    """Both clusters' DRControls and VRGs as a list and then a watch per kind keeps them.

    `changed()` hands over the apps whose objects changed since the last call, waiting for one;
    a phase then checks only those, so finding the last app done costs nothing per app.
    """

    KINDS = ("drcontrols", "volumereplicationgroups")

    def __init__(self, clusters: dict[str, Cluster]) -> None:
        self._cond = threading.Condition()
        self._drc: dict[str, dict[AppId, tuple[int, str, bool]]] = {c: {} for c in clusters}
        self._vrg: dict[str, dict[AppId, str]] = {c: {} for c in clusters}
        # Per app: (action, result, completedAt) of the DRControl's status.lastAction.
        self._actions: dict[str, dict[AppId, tuple[str, str, str]]] = {c: {} for c in clusters}
        self._changed: set[AppId] = set()
        # When each app's view (either cluster, either kind) last changed: an app is done from the
        # change that made it so, not from when a phase looked (the phase's thread is busy patching
        # at first, and saw apps done meanwhile only once the last patch was sent).
        self._changed_at: dict[AppId, float] = {}
        self._stop = threading.Event()
        self._synced = threading.Barrier(1 + len(clusters) * len(self.KINDS))
        self._threads = [threading.Thread(target=self._run, args=(c.name, c.kubeconfig, kind), daemon=True,
                                          name=f"observe-{c.name}-{kind}")
                         for c in clusters.values() for kind in self.KINDS]
        for t in self._threads:
            t.start()
        self._synced.wait(timeout=120)

    def stop(self) -> None:
        self._stop.set()

    def view(self, cluster: str, app: AppId) -> View | None:
        with self._cond:
            d = self._drc[cluster].get(app)
            return None if d is None else (*d, self._vrg[cluster].get(app, ""))

    def completed_at(self, cluster: str, app: AppId, action: str) -> float | None:
        """When the operator of `cluster` recorded `action` as Succeeded for `app` (epoch seconds)."""
        with self._cond:
            got = self._actions[cluster].get(app)
        if got is None or got[0] != action or got[1] != "Succeeded" or not got[2]:
            return None
        return dt.datetime.strptime(got[2], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()

    def changed_at(self, app: AppId) -> float:
        """The monotonic time at which the app's view last changed (0 if never seen)."""
        with self._cond:
            return self._changed_at.get(app, 0.0)

    def changed(self, timeout: float) -> set[AppId]:
        with self._cond:
            if not self._changed:
                self._cond.wait(timeout)
            out, self._changed = self._changed, set()
            return out

    def _put(self, cluster: str, kind: str, objs: Iterable[dict[str, Any]], deleted: bool = False,
             replace: bool = False) -> None:
        with self._cond:
            table: dict[AppId, Any] = self._drc[cluster] if kind == "drcontrols" else self._vrg[cluster]
            now = time.monotonic()
            old = dict(table) if replace else None
            if replace:
                self._changed |= table.keys()
                table.clear()
            for o in objs:
                app = (o["metadata"]["namespace"], o["metadata"]["name"])
                st = o.get("status") or {}
                was = old.get(app) if old is not None else table.get(app)
                if deleted:
                    table.pop(app, None)
                elif kind == "drcontrols":
                    table[app] = (int(st.get("generation") or 0), str(st.get("currentPrimary") or ""),
                                  harness.ready_for_application(o))
                    la = st.get("lastAction") or {}
                    self._actions[cluster][app] = (str(la.get("action") or ""), str(la.get("result") or ""),
                                                   str(la.get("completedAt") or ""))
                else:
                    table[app] = str(st.get("state") or "")
                if table.get(app) != was:
                    self._changed_at[app] = now
                self._changed.add(app)
            self._cond.notify_all()

    def _run(self, cluster: str, kubeconfig: Path, kind: str) -> None:
        api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
        first = True
        while not self._stop.is_set():
            try:
                listed = api.list_cluster_custom_object(harness.GROUP, harness.VERSION, kind)
                self._put(cluster, kind, listed["items"], replace=True)
                rv = listed["metadata"]["resourceVersion"]
                if first:
                    first = False
                    self._synced.wait()
                while not self._stop.is_set():
                    for ev in watch.Watch().stream(api.list_cluster_custom_object, harness.GROUP, harness.VERSION,
                                                   kind, resource_version=rv, timeout_seconds=30,
                                                   allow_watch_bookmarks=True):
                        if ev["type"] == "ERROR":  # e.g. 410 Gone: the watch is too old, list again
                            raise ValueError(ev["object"])
                        obj = ev["object"]
                        rv = obj["metadata"]["resourceVersion"]
                        if ev["type"] != "BOOKMARK":
                            self._put(cluster, kind, [obj], deleted=ev["type"] == "DELETED")
            except Exception:  # an API server restarting or a watch expiring: list again
                time.sleep(0.5)


@dataclass
class Site:
    env: LocalEnv
    clusters: dict[str, Cluster]
    apps: list[AppId]
    operators: dict[str, harness.Process]
    simulators: dict[str, harness.Process]
    ports: dict[str, int]
    observer: Observer
    # What earlier runs of each operator counted (its counters start at zero when it starts again).
    _offset: dict[str, Counter[str]] = field(default_factory=dict)
    #: Wall-clock time each app's last action patch returned.
    requested_wall: dict[AppId, float] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for name, port in self.ports.items():
            out += (scrape(port) if self.operators[name].running() else Counter()) + \
                self._offset.get(name, Counter())
        return out

    def events(self) -> Counter[str]:
        """Events about DRControls so far, by reason (a repeated Event counts each time)."""
        out: Counter[str] = Counter()
        for c in self.clusters.values():
            for ev in c.core.list_event_for_all_namespaces(
                    field_selector="involvedObject.kind=DRControl").items:
                out[str(ev.reason)] += int(ev.count or 1)
        return out

    def served(self) -> Counter[str]:
        """Requests both API servers served so far (see `scrape_server`)."""
        out: Counter[str] = Counter()
        for c in self.clusters.values():
            out += scrape_server(c)
        return out

    def kill(self, name: str) -> None:
        self._offset[name] = self._offset.get(name, Counter()) + scrape(self.ports[name])
        self.operators[name].kill()
        self.simulators[name].kill()

    def start(self, name: str) -> None:
        self.simulators[name].start()
        self.operators[name].start()

    def patch_all(self, clusters: list[str], action: str, target: str) -> dict[AppId, float]:
        """Set the action on every app (on each of `clusters`); when each app's last patch returned
        (monotonic; the wall-clock time goes to `requested_wall`)."""
        def one(app: AppId) -> tuple[AppId, float]:
            for c in clusters:
                harness.set_action(self.clusters[c], app[0], action, target, name=app[1])
            self.requested_wall[app] = time.time()
            return app, time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(one, self.apps))

    def create_all(self) -> dict[AppId, float]:
        def one(app: AppId) -> tuple[AppId, float]:
            for c in self.clusters.values():
                c.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, app[0], "drcontrols",
                                                         harness.drcontrol(app[0], name=app[1], preferred="east"))
            return app, time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(one, self.apps))

    def process_cpu(self) -> dict[str, tuple[int, float]]:
        """CPU seconds so far of every running process of the benchmark: name -> (pid, seconds)."""
        procs = {n: c.pid for n, c in self.env.components.items()}
        procs |= {f"operator-{n}": p.proc.pid for n, p in self.operators.items() if p.proc is not None and p.running()}
        procs |= {f"vrgsim-{n}": p.proc.pid for n, p in self.simulators.items() if p.proc is not None and p.running()}
        out = {"bench": (os.getpid(), time.process_time())}
        for n, pid in procs.items():
            if pid:
                with contextlib.suppress(OSError):
                    out[n] = (pid, proc_cpu_seconds(pid))
        return out

    def run_phase(self, name: str, start: Callable[[], dict[AppId, float]],
                  done: Callable[[View | None, View | None], bool], timeout: float,
                  action: tuple[str, str] | None = None) -> Phase:
        """Run `start`, then wait until `done(east's view, west's view)` holds for every app.

        `action` (action, target cluster): also measure each app by the completedAt its target's
        operator recorded, against the wall-clock time of its request."""
        self.requested_wall = {}
        before, events0 = self.counts(), self.events()
        served0 = self.served()
        procs0 = self.process_cpu()
        t_first = time.monotonic()
        requested = start()
        t_last = max(requested.values(), default=t_first)
        finished: dict[AppId, float] = {}
        deadline = time.monotonic() + timeout
        check: set[AppId] = set(self.apps)
        while True:
            now = time.monotonic()
            for app in check - finished.keys():
                if done(self.observer.view("east", app), self.observer.view("west", app)):
                    finished[app] = max(self.observer.changed_at(app), requested.get(app, t_first))
            if len(finished) == len(self.apps):
                break
            if now > deadline:
                raise TimeoutError(f"{name}: {len(finished)} of {len(self.apps)} apps done after {timeout:.0f} s\n"
                                   + "\n".join(f"--- {p.name} ---\n{p.tail(8)}" for p in self.operators.values()))
            check = self.observer.changed(timeout=1.0)
        after = self.counts()
        served = self.served() - served0
        # A process started in the phase counts from its start, one killed in it is left out.
        by_process = {n: c - (procs0[n][1] if n in procs0 and procs0[n][0] == pid else 0.0)
                      for n, (pid, c) in self.process_cpu().items()}
        cpu = sum(c for n, c in by_process.items() if n.startswith("operator-"))
        end = max(finished.values())
        by_operator: list[float] = []
        if action is not None:
            for app in self.apps:
                completed = self.observer.completed_at(action[1], app, action[0])
                if completed is not None and app in self.requested_wall:
                    by_operator.append(completed - self.requested_wall[app])
        return Phase(name, len(self.apps), end - t_last, end - t_first,
                     [finished[a] - requested.get(a, t_first) for a in self.apps],
                     part(after - before, "s3"), sum(part(after - before, "api").values()),
                     part(after - before, "api"), part(after - before, "reconciles"),
                     dict(self.events() - events0), cpu, part(after - before, "nudges"), by_operator,
                     by_process, dict(served))

    def steady(self, seconds: float, quiet: float) -> Steady:
        time.sleep(quiet)  # first heartbeats and polls after the protection are not steady state
        pids = {n: p.proc.pid for n, p in self.operators.items() if p.proc is not None}
        cpu0 = {n: proc_cpu_seconds(pid) for n, pid in pids.items()}
        counts0 = {n: scrape(port) for n, port in self.ports.items()}
        served0 = self.served()
        t0 = time.monotonic()
        rss: dict[str, float] = {n: 0.0 for n in pids}
        while time.monotonic() - t0 < seconds:
            time.sleep(min(5.0, seconds))
            for n, pid in pids.items():
                rss[n] = max(rss[n], proc_rss_mib(pid))
        elapsed = time.monotonic() - t0
        out = Steady(elapsed, server_requests=dict(self.served() - served0))
        for n, pid in pids.items():
            seen = scrape(self.ports[n]) - counts0[n]
            out.per_operator[n] = {
                "cpu_percent": 100 * (proc_cpu_seconds(pid) - cpu0[n]) / elapsed, "rss_mib": rss[n],
                "s3_per_minute": 60 * sum(part(seen, "s3").values()) / elapsed,
                "api_per_minute": 60 * sum(part(seen, "api").values()) / elapsed}
            out.s3_by_object[n] = part(seen, "s3")
            out.api_by_verb[n] = part(seen, "api")
            out.reconciles[n] = part(seen, "reconciles").get("drcontrol", 0)
        return out


def protected(east: View | None, west: View | None) -> bool:
    return east == (1, "east", True, "Primary") and west == (1, "east", False, "Secondary")


def failed_over(east: View | None, west: View | None) -> bool:
    return west is not None and west[:3] == (2, "west", True)


def returned(east: View | None, west: View | None) -> bool:
    return east == (2, "west", False, "Secondary")


def relocated(east: View | None, west: View | None) -> bool:
    return east == (3, "east", True, "Primary") and west == (3, "east", False, "Secondary")


def private_env(root: Path) -> AbstractContextManager[LocalEnv]:
    return private(list(CLUSTERS), root)


PHASES = ("protect", "steady", "failover", "return", "relocate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--apps", type=int, default=100)
    p.add_argument("--per-namespace", type=int, default=10, help="apps per namespace")
    p.add_argument("--workers", type=int, default=16, help="DRControl reconcile workers per operator")
    p.add_argument("--poll", default="30s", help="peer poll interval (operator default 30s)")
    p.add_argument("--heartbeat", default="60s", help="heartbeat interval (operator default 60s)")
    p.add_argument("--stale-after", default="180s")
    p.add_argument("--sim-delay", type=float, default=0.5, help="VRG simulator delay before acting on a spec")
    p.add_argument("--sim-workers", type=int, default=50,
                   help="VRGs the simulator acts on at once (Ramen's maxConcurrentReconciles; 50 in its default "
                        "RamenConfig)")
    p.add_argument("--steady", type=float, default=60.0, help="seconds of steady state to measure")
    p.add_argument("--quiet", type=float, default=None,
                   help="seconds to let the first heartbeats and polls pass before that (default: the heartbeat)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds each phase may take")
    p.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--nudge", action="store_true",
                   help="give both DRClusters a peerEndpoint, so the operators nudge each other")
    p.add_argument("--phases", default=",".join(PHASES),
                   help="phases to run, in their order; protect always runs, relocate needs return, "
                        "return needs failover (e.g. protect,failover for a quicker look at a failover)")
    args = p.parse_args(argv)
    wanted = {w.strip() for w in args.phases.split(",") if w.strip()} | {"protect"}
    if not wanted <= set(PHASES) or ("relocate" in wanted and "return" not in wanted) \
            or ("return" in wanted and "failover" not in wanted):
        p.error(f"--phases: a subset of {','.join(PHASES)}; relocate needs return, return needs failover")
    timing = harness.Timing(poll=args.poll, heartbeat=args.heartbeat, stale_after=args.stale_after,
                            sim_delay=args.sim_delay, sim_workers=args.sim_workers)
    logdir = Path(tempfile.mkdtemp(prefix="bench-site-logs-"))
    apps = [(f"site-{i // args.per_namespace:04d}", f"app-{i:05d}") for i in range(args.apps)]
    started = time.monotonic()
    phases: list[Phase] = []
    steady: Steady | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-site-env-") as tmp, private_env(Path(tmp) / "env") as env:
            clusters = {n: kube_cluster(n, env.kubeconfig(n)) for n in CLUSTERS}
            print(f"[bench] environment up in {time.monotonic() - started:.0f} s; {args.apps} apps, "
                  f"{args.workers} workers, poll {args.poll}, heartbeat {args.heartbeat}"
                  f"{', nudges' if args.nudge else ''}", flush=True)
            for name, c in clusters.items():
                peers = {o: oc.kubeconfig for o, oc in clusters.items() if o != name} if args.nudge else None
                harness.configure_cluster(c, env.s3, peer_kubeconfigs=peers)
                for ns in sorted({a[0] for a in apps}):
                    c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            ports = {n: free_port() for n in CLUSTERS}
            operators = {n: harness.operator_process(n, c.kubeconfig, logdir, timing, [
                "--metrics-bind-address", f"127.0.0.1:{ports[n]}", "--metrics-auth", "none",
                "--workers", str(args.workers), "--log-format", "text"]) for n, c in clusters.items()}
            simulators = {n: harness.simulator_process(n, c.kubeconfig, env.s3_config_file(), logdir, timing)
                          for n, c in clusters.items()}
            site = Site(env, clusters, apps, operators, simulators, ports, Observer(clusters))
            for n in CLUSTERS:
                site.start(n)
            try:
                phases.append(site.run_phase("protect", site.create_all, protected, args.timeout))
                print(phases[-1].line(), flush=True)
                if "steady" in wanted:
                    quiet = args.quiet if args.quiet is not None else parse_duration(args.heartbeat)
                    steady = site.steady(args.steady, quiet)
                    print("\n".join(steady.lines()), flush=True)

                def lose_east() -> dict[AppId, float]:
                    site.kill("east")
                    return site.patch_all(["west"], "Failover", "west")
                if "failover" in wanted:
                    phases.append(site.run_phase("failover", lose_east, failed_over, args.timeout,
                                                 action=("Failover", "west")))
                    print(phases[-1].line(), flush=True)

                def east_returns() -> dict[AppId, float]:
                    site.start("east")
                    return {}
                if "return" in wanted:
                    phases.append(site.run_phase("return", east_returns, returned, args.timeout))
                    print(phases[-1].line(), flush=True)
                if "relocate" in wanted:
                    phases.append(site.run_phase("relocate",
                                                 lambda: site.patch_all(list(CLUSTERS), "Relocate", "east"),
                                                 relocated, args.timeout, action=("Relocate", "east")))
                    print(phases[-1].line(), flush=True)
            finally:
                site.observer.stop()
                for proc in (*operators.values(), *simulators.values()):
                    proc.stop()
    finally:
        if args.keep_logs:
            print(f"logs: {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    by = {ph.name: ph for ph in phases}
    parts = []
    if "protect" in by:
        parts.append(f"protect {by['protect'].total_from_first_request:.0f} s")
    if steady is not None:
        parts.append(f"steady CPU {max(f['cpu_percent'] for f in steady.per_operator.values()):.2f}% of a core")
    if "failover" in by:
        parts.append(f"failover {by['failover'].total_from_last_request:.0f} s "
                     f"(p50 {statistics.median(by['failover'].per_app):.1f} s)")
    if "return" in by:
        parts.append(f"return {by['return'].total_from_first_request:.0f} s")
    if "relocate" in by:
        parts.append(f"relocate {by['relocate'].total_from_last_request:.0f} s "
                     f"(p50 {statistics.median(by['relocate'].per_app):.1f} s)")
    if parts:
        print(f"\nsummary: {args.apps} apps, {args.workers} workers: {', '.join(parts)}; "
              f"{time.monotonic() - started:.0f} s in all")
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "phases": [asdict(ph) for ph in phases],
                                         "steady": asdict(steady) if steady else None}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
