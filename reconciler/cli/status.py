"""`ramenctl status`: every protected app on both clusters, from S3 alone or with kubeconfigs.

The survivor's view: with only the bucket, it shows what each cluster last said (its digest and
heartbeat) and who dr-state names Primary. A refresh costs two conditional GETs per cluster
(health, digest) plus one dr-state GET per app, conditional on its ETag after the first; with a
kubeconfig, one LIST of DRControls per reachable cluster adds ReadyForApplication, phase and reasons.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import yaml
from kubernetes.client.rest import ApiException

from reconciler.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CLIError,
    Kube,
    S3Target,
    add_kube_args,
    add_s3_args,
    connect_kubes,
    kube_error,
    resolve_s3,
    s3_error_text,
    valid_cluster_name,
)
from reconciler.s3peer import (
    AppKey,
    CorruptObject,
    Digest,
    DRState,
    Health,
    Kind,
    Record,
    S3PeerError,
    StoredObject,
)
from reconciler.s3peer import envelope as env
from reconciler.s3peer.digestpages import DigestInconsistent, read_digest
from reconciler.s3peer.moving import MovedMarker
from reconciler.s3peer.peer import decode_record
from reconciler.s3peer.quorum import AcceptorState
from reconciler.s3peer.store import NOT_MODIFIED

T = TypeVar("T")

EPILOG = """\
examples:
  # the survivor's view, S3 only (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
  ramenctl status --endpoint https://s3.example.com --bucket ramen --clusters east,west
  # with both clusters: S3 settings and credentials are read from the operator's ConfigMap and Secret
  ramenctl status --kubeconfig-east east.kubeconfig --kubeconfig-west west.kubeconfig
  ramenctl status --kubeconfig east=east.kubeconfig --not-healthy -o wide --watch

exit codes: 0 shown (and with --not-healthy: every app healthy), 1 with --not-healthy when an app is
not healthy, or when S3 is the only source and could not be read, 2 usage or configuration error
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="every protected app on both clusters, from S3 and optional kubeconfigs",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_kube_args(p)
    add_s3_args(p)
    p.add_argument("--clusters", help="DR cluster names, comma separated (default: kubeconfig names, else listed "
                                      "from the bucket's cluster-info/)")
    p.add_argument("-n", "--namespace", help="only apps in this namespace")
    p.add_argument("--policy", help="only apps of this DRPolicy (needs a kubeconfig: S3 does not record policies)")
    p.add_argument("--not-healthy", action="store_true", help="only apps with a problem")
    p.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"), default="table")
    p.add_argument("--stale-after", type=float, default=180.0,
                   help="heartbeat age, seconds, after which a cluster counts as stale (default 180)")
    p.add_argument("-w", "--watch", action="store_true", help="redraw whenever something changes")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes with --watch")


# -- reading S3 ---------------------------------------------------------------
class CachedReader:
    """GETs with If-None-Match on the ETag held, so an unchanged object costs a 304 and no decode."""

    def __init__(self, target: S3Target) -> None:
        self.target = target
        self.requests = 0
        self._held: dict[str, tuple[str, Any]] = {}
        self._raw: dict[str, StoredObject] = {}

    def get(self, key: str, kind: Kind, parse: Callable[[Mapping[str, Any], str | None], T]) -> Record[T] | None:
        held = self._held.get(key)
        self.requests += 1
        obj = self.target.store.get(key, if_none_match=held[0] if held else None, max_bytes=env.MAX_OBJECT_BYTES)
        if obj is NOT_MODIFIED and held is not None:
            rec: Record[T] = held[1]
            return rec
        self._held.pop(key, None)
        if not isinstance(obj, StoredObject):
            return None
        rec = decode_record(obj, kind, parse, self.target.hmac_key)
        self._held[key] = (obj.etag, rec)
        return rec

    def raw(self, key: str) -> StoredObject | None:
        """An object as stored (for the digest's index and pages), ETag-conditional like `get`."""
        held = self._raw.get(key)
        self.requests += 1
        obj = self.target.store.get(key, if_none_match=held.etag if held else None, max_bytes=env.MAX_OBJECT_BYTES)
        if obj is NOT_MODIFIED and held is not None:
            return held
        self._raw.pop(key, None)
        if not isinstance(obj, StoredObject):
            return None
        self._raw[key] = obj
        return obj

    def digest(self, cluster: str) -> Digest | None:
        """A cluster's digest, its pages put together. A page behind its index (being written) is
        left out; a corrupt one raises."""
        loaded = read_digest(self.raw, self.target.keys, cluster, self.target.hmac_key)
        if loaded is None:
            return None
        for problem in loaded.problems.values():
            if not isinstance(problem, DigestInconsistent):
                raise problem
        return Digest(apps=loaded.apps, storage_classes_hash=loaded.storage_classes_hash)

    def dr_state(self, app: AppKey) -> tuple[DRState | None, bool]:
        """dr-state as this store holds it, and whether it came from the store's quorum acceptor: the
        single-store object, or, when that is absent or the marker of a move into a quorum (which
        is how a quorum app's looks), this store's acceptor (which may lag the majority)."""
        key = self.target.keys.dr_state(app)
        try:
            rec = self.get(key, Kind.DR_STATE, DRState.from_body)
        except CorruptObject:
            self.get(key, Kind.DR_STATE_MOVED, MovedMarker.from_body)  # raises if it is not that either
            rec = None
        if rec is not None:
            return rec.value, False
        acc = self.get(self.target.keys.dr_state_acceptor(app), Kind.DR_ACCEPTOR, AcceptorState.from_body)
        if acc is not None and acc.value.accepted.state is not None:
            return acc.value.accepted.state, True
        return None, False


# -- the model --------------------------------------------------------------------
@dataclass
class ClusterView:
    name: str
    heartbeat_age: float | None = None  # seconds, by this machine's clock against the writer's
    stale: bool | None = None
    sequence: int | None = None
    operator_version: str | None = None
    operator_ready: bool | None = None
    s3_error: str | None = None
    kube: str | None = None  # None: no kubeconfig given; else "ok" or why not


@dataclass
class AppCluster:
    cluster: str
    role: str | None = None  # from the cluster's digest; None when it does not report the app
    observed_generation: int | None = None
    ready: str | None = None  # ReadyForApplication from the DRControl (kubeconfig only)
    phase: str | None = None
    reasons: list[str] = field(default_factory=list)
    last_action: str | None = None
    policy: str | None = None


@dataclass
class AppView:
    namespace: str
    name: str
    primary: str | None = None
    generation: int | None = None
    dr_state_error: str | None = None
    # dr-state over a quorum: read from the one acceptor in this store (it may lag the majority).
    from_acceptor: bool = False
    clusters: list[AppCluster] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def policy(self) -> str | None:
        return next((c.policy for c in self.clusters if c.policy), None)

    @property
    def healthy(self) -> bool:
        return not self.problems


@dataclass
class Report:
    clusters: list[ClusterView]
    apps: list[AppView]
    s3: str | None
    requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "s3": self.s3,
            "clusters": [asdict(c) for c in self.clusters],
            "apps": [{**asdict(a), "healthy": a.healthy, "policy": a.policy} for a in self.apps],
        }


# -- collection ---------------------------------------------------------------------
def _age(written_at: str, now: datetime) -> float | None:
    try:
        t = datetime.strptime(written_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0.0, (now - t).total_seconds())


def _condition(drc: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    for c in (drc.get("status") or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return {}


def drc_reasons(drc: Mapping[str, Any]) -> list[str]:
    """Why a DRControl is not fine: Stalled, frozen (S3Reachable False) or not Ready, with the operator's words."""
    out: list[str] = []
    for ctype, bad in (("Stalled", "True"), ("S3Reachable", "False"), ("Ready", "False")):
        c = _condition(drc, ctype)
        if c.get("status") == bad:
            out.append(f"{ctype}={bad} {c.get('reason', '')}: {c.get('message', '')}".strip())
            if ctype != "Ready":
                break  # the Ready condition repeats a stall's reason
    return out


def last_action_text(drc: Mapping[str, Any]) -> str | None:
    la = (drc.get("status") or {}).get("lastAction") or {}
    if not la.get("action"):
        return None
    text = f"{la['action']}->{la.get('targetCluster', '?')} {la.get('result', '')}".strip()
    if la.get("durationSeconds") is not None:
        text += f" ({float(la['durationSeconds']):.0f}s)"
    return text


def find_problems(app: AppView, clusters: Mapping[str, ClusterView]) -> list[str]:
    """What makes an app not healthy, in words; empty when it is protected as expected."""
    if app.dr_state_error:
        return [f"dr-state unreadable: {app.dr_state_error}"]
    if app.primary is None or app.generation is None:
        return ["no dr-state (not claimed yet)"]
    out: list[str] = []
    ready = []
    for ac in app.clusters:
        cv = clusters.get(ac.cluster)
        if cv is not None and cv.stale:
            out.append(f"{ac.cluster}: heartbeat stale")
        if ac.role is None:
            if cv is not None and cv.s3_error and cv.s3_error != "no heartbeat":
                out.append(f"{ac.cluster}: digest not read ({cv.s3_error})")
            else:
                out.append(f"{ac.cluster}: does not report the app")
        else:
            if (ac.observed_generation or 0) < app.generation:
                out.append(f"{ac.cluster}: at generation {ac.observed_generation}, not {app.generation}")
            is_primary = ac.role.startswith("primary")
            if ac.cluster == app.primary and not is_primary:
                out.append(f"{ac.cluster}: named Primary but reports {ac.role}")
            if ac.cluster != app.primary and is_primary:
                out.append(f"{ac.cluster}: reports {ac.role} but dr-state names {app.primary}")
        if ac.ready == "True":
            ready.append(ac.cluster)
        if ac.cluster == app.primary and ac.ready == "False":
            out.append(f"{ac.cluster}: not ReadyForApplication")
        out += [f"{ac.cluster}: {r}" for r in ac.reasons if not r.startswith("Ready=")]
    if len(ready) > 1:
        out.append(f"ReadyForApplication on {' and '.join(ready)}")
    elif ready and ready[0] != app.primary:
        out.append(f"{ready[0]}: ReadyForApplication but dr-state names {app.primary}")
    return out


class Collector:
    """One refresh of the view; keeps ETags between refreshes for --watch."""

    def __init__(self, target: S3Target | None, kubes: Sequence[Kube], clusters: Sequence[str],
                 stale_after: float, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.target = target
        self.reader = CachedReader(target) if target else None
        self.kubes = list(kubes)
        self.clusters = list(clusters)
        self.stale_after = stale_after
        self._now = now

    def discover_clusters(self) -> list[str]:
        """Cluster names from the bucket's cluster-info/ (one LIST, done once)."""
        if self.clusters or self.target is None:
            return self.clusters
        prefix = self.target.keys.prefix + "cluster-info/"
        try:
            keys = self.target.store.list_keys(prefix)
        except S3PeerError as e:
            raise CLIError(f"cannot list {prefix} in bucket {self.target.bucket}: {e.message}; name the clusters "
                           "with --clusters", EXIT_FAILED) from None
        names = sorted({k[len(prefix):].split("/", 1)[0] for k in keys if "/" in k[len(prefix):]})
        self.clusters = names
        return names

    def collect(self) -> Report:
        now = self._now()
        names = self.discover_clusters()
        for k in self.kubes:
            if k.name not in names:
                names.append(k.name)
        views = {n: ClusterView(n) for n in names}
        digests: dict[str, Digest | None] = {}
        if self.reader is not None and self.target is not None:
            keys = self.target.keys
            for n in names:
                v = views[n]
                try:
                    h = self.reader.get(keys.health(n), Kind.HEALTH, Health.from_body)
                    if h is None:
                        v.s3_error = "no heartbeat"
                    else:
                        v.heartbeat_age = _age(h.written_at, now)
                        v.stale = v.heartbeat_age is None or v.heartbeat_age > self.stale_after
                        v.sequence, v.operator_version = h.value.sequence, h.value.operator_version
                        v.operator_ready = h.value.ready
                    digests[n] = self.reader.digest(n)
                except S3PeerError as e:
                    v.s3_error = s3_error_text(e)
                    digests[n] = None
        drcs: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for k in self.kubes:
            try:
                drcs[k.name] = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in k.list_drcs()}
                views[k.name].kube = "ok"
            except ApiException as e:
                views[k.name].kube = "no DRControl CRD" if e.status == 404 else kube_error(e)
            except Exception as e:  # any failure to reach a site is shown, not raised
                views[k.name].kube = kube_error(e)
        apps: set[tuple[str, str]] = set()
        for dg in digests.values():
            if dg is not None:
                apps |= {(a.namespace, a.name) for a in dg.apps}
        for m in drcs.values():
            apps |= set(m)
        out = [self._app(ns, name, names, digests, drcs) for ns, name in sorted(apps)]
        for a in out:
            # Without S3 and without a DRControl status there is nothing to judge an app by.
            if self.reader is not None or a.primary is not None:
                a.problems = find_problems(a, views)
        return Report(list(views.values()), out, f"{self.target.endpoint} bucket {self.target.bucket}"
                      if self.target else None, self.reader.requests if self.reader else 0)

    def _app(self, ns: str, name: str, names: Sequence[str], digests: Mapping[str, Digest | None],
             drcs: Mapping[str, Mapping[tuple[str, str], Mapping[str, Any]]]) -> AppView:
        av = AppView(ns, name)
        try:
            app = AppKey(ns, name)
        except ValueError as e:
            av.dr_state_error = str(e)
            return av
        if self.reader is not None and self.target is not None:
            try:
                state, av.from_acceptor = self.reader.dr_state(app)
                if state is not None:
                    av.primary, av.generation = state.primary, state.generation
            except S3PeerError as e:
                av.dr_state_error = s3_error_text(e)
        for n in names:
            ac = AppCluster(n)
            d = digests.get(n)
            entry = d.apps.get(app) if d else None
            if entry is not None and entry.status_hash is not None:
                ac.role, ac.observed_generation = str(entry.role), entry.observed_generation
            drc = (drcs.get(n) or {}).get((ns, name))
            if drc is not None:
                st = drc.get("status") or {}
                ac.ready = _condition(drc, "ReadyForApplication").get("status")
                ac.phase = st.get("phase")
                ac.reasons = drc_reasons(drc)
                ac.last_action = last_action_text(drc)
                ac.policy = ((drc.get("spec") or {}).get("drPolicyRef") or {}).get("name")
                if self.reader is None:
                    # Without S3 the DRControls' own views of dr-state are the best there is: the role
                    # shown is the one the cluster's status implies, not one it reported to its peer.
                    av.primary = av.primary or st.get("currentPrimary")
                    av.generation = av.generation or st.get("generation")
                    if st.get("currentPrimary"):
                        ac.role = "primary" if st["currentPrimary"] == n else "secondary"
                        ac.observed_generation = st.get("generation")
            av.clusters.append(ac)
        return av


def select(report: Report, namespace: str | None, policy: str | None, not_healthy: bool) -> Report:
    apps = [a for a in report.apps
            if (namespace is None or a.namespace == namespace) and (policy is None or a.policy == policy)
            and (not not_healthy or not a.healthy)]
    return Report(report.clusters, apps, report.s3, report.requests)


# -- rendering ----------------------------------------------------------------------
def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _dash(v: object) -> str:
    return "-" if v is None or v == "" else str(v)


def render_table(report: Report, wide: bool) -> list[str]:
    lines: list[str] = []
    head = ["CLUSTER", "HEARTBEAT", "STALE", "OPERATOR", "KUBE"]
    rows = [head]
    for c in report.clusters:
        if report.s3 is None:
            hb = "- (S3 not read)"
        else:
            hb = c.s3_error if c.s3_error else f"{fmt_age(c.heartbeat_age)} ago (seq {c.sequence})"
        stale = "-" if c.stale is None else ("yes" if c.stale else "no")
        op = "-" if c.operator_version is None else f"{c.operator_version}{'' if c.operator_ready else ' not-ready'}"
        rows.append([c.name, hb, stale, op, _dash(c.kube)])
    lines += table(rows)
    lines.append("")
    if not report.apps:
        lines.append("No protected applications match.")
        return lines
    head = ["APP", "PRIMARY", "GEN", "CLUSTER", "ROLE", "OBSERVED", "READY", "PHASE", "HEALTH"]
    if wide:
        head[1:1] = ["POLICY"]
        head += ["LASTACTION", "REASONS"]
    rows = [head]
    for a in report.apps:
        for i, ac in enumerate(a.clusters or [AppCluster("-")]):
            first = i == 0
            health = ("ok" if a.healthy else f"{len(a.problems)} problem{'s' * (len(a.problems) != 1)}") \
                if first else ""
            row = [a.key if first else "", _dash(a.primary) if first else "", _dash(a.generation) if first else "",
                   ac.cluster, _dash(ac.role), _dash(ac.observed_generation), _dash(ac.ready), _dash(ac.phase),
                   health]
            if wide:
                row[1:1] = [_dash(a.policy) if first else ""]
                row += [_dash(ac.last_action), "; ".join(ac.reasons) or "-"]
            rows.append(row)
    lines += table(rows)
    problems = [(a.key, p) for a in report.apps for p in a.problems]
    if problems:
        lines.append("")
        lines += [f"{k}: {p}" for k, p in problems]
    return lines


def render(report: Report, output: str) -> str:
    if output == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=False)
    if output == "yaml":
        return yaml.safe_dump(report.to_dict(), sort_keys=False).rstrip()
    return "\n".join(render_table(report, output == "wide"))


# -- the command ----------------------------------------------------------------------
def _clusters_arg(text: str | None) -> list[str]:
    names = [c.strip() for c in (text or "").split(",") if c.strip()]
    for n in names:
        if not valid_cluster_name(n):
            raise CLIError(f"--clusters: invalid cluster name {n!r}")
    return names


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if args.interval <= 0 or args.stale_after <= 0:
        raise CLIError("--interval and --stale-after must be positive")
    kubes = connect_kubes(args)
    if args.policy and not kubes:
        raise CLIError("--policy needs a kubeconfig: DRPolicy names are not recorded in S3")
    target = resolve_s3(args, kubes, required=not kubes)
    names = _clusters_arg(args.clusters) or [k.name for k in kubes]
    collector = Collector(target, kubes, names, args.stale_after)

    def once() -> tuple[str, Report]:
        rep = select(collector.collect(), args.namespace, args.policy, args.not_healthy)
        return render(rep, args.output), rep

    if not args.watch:
        text, rep = once()
        print(text, file=out)
        s3_down = target is not None and bool(rep.clusters) and all(
            c.s3_error and c.s3_error != "no heartbeat" for c in rep.clusters)
        if s3_down and not kubes:
            # With S3 as the only source and nothing read from it, the table shows nothing true.
            print(f"ramenctl: could not read the bucket {target.bucket if target else ''} at "
                  f"{target.endpoint if target else ''}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_FAILED if args.not_healthy and (rep.apps or s3_down) else EXIT_OK
    # Ctrl-C ends a watch at once: a KeyboardInterrupt raised inside a refresh would first wait for
    # the refresh's S3 reads to finish (the thread pool joins its threads), seconds on a slow store.
    # The watch only reads, so nothing is left half done.
    signal.signal(signal.SIGINT, _exit_on_interrupt)
    last, unchanged = None, 0
    while True:
        text, _ = once()
        # Ages tick every second: redraw when anything else changes, and every 10 refreshes for the ages.
        key = text if args.output in ("json", "yaml") else _without_ages(text)
        unchanged = 0 if key != last else unchanged + 1
        if key != last or unchanged >= 10:
            unchanged = 0
            if out.isatty():
                out.write("\x1b[H\x1b[2J")
            print(f"{datetime.now(UTC):%H:%M:%S}  (every {args.interval:g}s, Ctrl-C to stop)\n{text}\n", file=out,
                  flush=True)
            last = key
        time.sleep(args.interval)


def _exit_on_interrupt(signum: int, frame: object) -> None:
    sys.stdout.flush()
    os._exit(130)


def _without_ages(text: str) -> str:
    return re.sub(r"\b\d+[smhd](\d+[smh])? ago \(seq \d+\)", "", text)
