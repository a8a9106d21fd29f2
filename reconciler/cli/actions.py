"""`ramenctl failover|relocate|cancel`: set or clear a DRControl action on the clusters it can reach.

Actions are declarative (spec.action and spec.targetCluster), so this only patches the spec and,
with --wait, watches the operators carry the action out. A failover needs only the target: its
operator takes the next generation in S3 on its own. A relocate needs the current Primary's operator
to demote first, so it is refused when that cluster cannot be reached and its heartbeat is stale.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from kubernetes.client.rest import ApiException

from reconciler.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    GROUP,
    KUBE_TIMEOUT,
    VERSION,
    CLIError,
    Kube,
    S3Target,
    add_kube_args,
    add_s3_args,
    connect_kubes,
    kube_error,
    parse_app,
    s3_error_text,
)
from reconciler.cli.common import resolve_s3 as _resolve_s3
from reconciler.cli.status import CachedReader, _age
from reconciler.durations import parse_duration
from reconciler.s3peer import AppKey, Health, Kind, S3PeerError

EPILOG = """\
examples:
  # east's site is gone: fail over to west, with west's kubeconfig only
  ramenctl failover my-app/my-app-dr --to west --kubeconfig-west west.kubeconfig --wait
  # planned move, set on both clusters
  ramenctl relocate my-app/my-app-dr --to west --kubeconfig-east e.kc --kubeconfig-west w.kc --wait --timeout 10m
  ramenctl cancel my-app/my-app-dr --kubeconfig-east e.kc --kubeconfig-west w.kc

exit codes: 0 done (or nothing to do), 1 refused or failed, 2 usage error, 3 --wait timed out
"""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for action, text in (("failover", "make CLUSTER Primary now, without waiting for the other cluster"),
                         ("relocate", "move the app to CLUSTER after the current Primary demotes (no data loss)")):
        p = sub.add_parser(action, help=text, description=f"{text}.\n\n{__doc__}", epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("app", metavar="NAMESPACE/NAME", help="the DRControl")
        p.add_argument("--to", required=True, metavar="CLUSTER", help="the cluster to become Primary")
        p.add_argument("--wait", action="store_true", help="show progress and exit 0 only once the app is ready")
        p.add_argument("--timeout", default="5m", help="how long --wait waits, e.g. 90s, 10m (default 5m)")
        p.add_argument("--interval", type=float, default=1.0, help="seconds between progress polls")
        p.add_argument("--stale-after", type=float, default=180.0,
                       help="heartbeat age, seconds, after which an unreachable peer counts as dead (default 180)")
        add_kube_args(p)
        add_s3_args(p)
    p = sub.add_parser("cancel", help="clear a pending action on the clusters it can reach", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("app", metavar="NAMESPACE/NAME", help="the DRControl")
    add_kube_args(p)


def peer_heard(connected: Mapping[str, Any], heartbeat_age: float | None, stale_after: float,
               s3_read: bool) -> tuple[bool, str]:
    """Whether the peer's operator is alive, and the evidence in words.

    The target's PeerConnected decides when it has a verdict: its operator judges with the
    staleAfter it is configured with. Without one (no DRControl status yet, or PeerNeverSeen
    because that operator was paused before it heard the peer) a heartbeat just read from S3
    that is younger than `stale_after` is the evidence.
    """
    verdict = bool(connected) and connected.get("reason") != "PeerNeverSeen"
    fresh = heartbeat_age is not None and heartbeat_age < stale_after
    alive = connected.get("status") == "True" if verdict else fresh
    seen = [f"PeerConnected={connected.get('status')} {connected.get('reason', '')}".strip()] if connected else []
    seen.append(f"heartbeat {int(heartbeat_age)}s old" if heartbeat_age is not None
                else "no heartbeat in S3" if s3_read else "S3 not given")
    return alive, ", ".join(seen)


def parse_timeout(text: str) -> float:
    try:
        v = parse_duration(text)
    except ValueError:
        raise CLIError(f"--timeout: not a duration: {text!r} (e.g. 90s, 10m)") from None
    if v <= 0:
        raise CLIError(f"--timeout must be positive: {text!r}")
    return v


# -- reading both sides ---------------------------------------------------------
@dataclass
class Side:
    name: str
    kube: Kube | None
    drc: dict[str, Any] | None = None
    error: str | None = None  # why the DRControl could not be read

    @property
    def reachable(self) -> bool:
        return self.kube is not None and self.error is None


def read_sides(kubes: list[Kube], ns: str, name: str, clusters: list[str]) -> dict[str, Side]:
    by = {k.name: k for k in kubes}
    sides: dict[str, Side] = {}
    for c in dict.fromkeys([*clusters, *by]):
        s = Side(c, by.get(c))
        if s.kube is None:
            s.error = "no kubeconfig given"
        else:
            try:
                s.drc = s.kube.get_drc(ns, name)
                if s.drc is None:
                    s.error = f"DRControl {ns}/{name} not found"
            except Exception as e:  # a dead site is a reason, not a crash
                s.error = kube_error(e)
        sides[c] = s
    return sides


def _cond(drc: Mapping[str, Any] | None, ctype: str) -> Mapping[str, Any]:
    for c in ((drc or {}).get("status") or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return {}


def _policy_clusters(sides: Mapping[str, Side]) -> list[str]:
    for s in sides.values():
        if s.drc is None or s.kube is None:
            continue
        pol = ((s.drc.get("spec") or {}).get("drPolicyRef") or {}).get("name")
        try:
            obj = s.kube.custom.get_cluster_custom_object(GROUP, VERSION, "drpolicies", pol,
                                                          _request_timeout=KUBE_TIMEOUT)
            clusters = (obj.get("spec") or {}).get("drClusters") or []
            if len(clusters) == 2:
                return [str(c) for c in clusters]
        except Exception:  # the policy is read from whichever cluster answers
            continue
    return []


@dataclass
class Observed:
    """What one poll saw, from S3 and the DRControls; None where a source was not available."""

    primary: str | None = None
    generation: int | None = None
    roles: dict[str, tuple[str, int, bool]] = field(default_factory=dict)  # cluster -> role, gen, intent
    heartbeat_age: dict[str, float | None] = field(default_factory=dict)
    s3_error: str | None = None


def observe_s3(reader: CachedReader | None, target: S3Target | None, app: AppKey, clusters: list[str]) -> Observed:
    o = Observed()
    if reader is None or target is None:
        return o
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    try:
        ds, _ = reader.dr_state(app)
        if ds is not None:
            o.primary, o.generation = ds.primary, ds.generation
        for c in clusters:
            d = reader.digest(c)
            e = d.apps.get(app) if d else None
            if e is not None:
                o.roles[c] = (str(e.role), e.observed_generation, e.intent_hash is not None)
            h = reader.get(target.keys.health(c), Kind.HEALTH, Health.from_body)
            o.heartbeat_age[c] = _age(h.written_at, now) if h else None
    except S3PeerError as e:
        o.s3_error = s3_error_text(e)
    return o


# -- progress -------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    done_at: float | None = None
    implied: bool = False


def steps_for(action: str, volsync: bool) -> list[Step]:
    names = ["intent written"]
    if action == "Relocate":
        names += (["final sync"] if volsync else []) + ["demoted", "released"]
    names += ["generation taken", "VRG primary", "ready"]
    return [Step(n) for n in names]


@dataclass
class Context:
    action: str
    target: str
    peer: str
    base_generation: int
    spec_generations: dict[str, int]


def evaluate(ctx: Context, sides: Mapping[str, Side], obs: Observed, target_vrg: Mapping[str, Any] | None,
             peer_vrg: Mapping[str, Any] | None = None) -> dict[str, bool]:
    """Which steps the evidence shows done (pure, so the step logic is unit-tested)."""
    t, p = sides.get(ctx.target), sides.get(ctx.peer)
    tdrc, pdrc = (t.drc if t else None), (p.drc if p else None)
    t_st, p_st = (tdrc or {}).get("status") or {}, (pdrc or {}).get("status") or {}

    def la_matches(st: Mapping[str, Any], cluster: str) -> bool:
        la = st.get("lastAction") or {}
        return bool(la.get("action") == ctx.action and la.get("targetCluster") == ctx.target
                    and int(la.get("specGeneration") or 0) >= ctx.spec_generations.get(cluster, 1 << 62))

    done: dict[str, bool] = {}
    intent = any(v[2] for v in obs.roles.values()) or la_matches(t_st, ctx.target) or la_matches(p_st, ctx.peer)
    done["intent written"] = intent
    peer_role = obs.roles.get(ctx.peer)
    peer_vrg_secondary = _cond(pdrc, "ReadyForApplication").get("reason") == "Released"
    released = (peer_role is not None and peer_role[0] == "secondary-ready"
                and peer_role[1] >= ctx.base_generation) or peer_vrg_secondary
    done["released"] = released
    # The old Primary's VRG, when its API server answers, shows the final sync and the demotion
    # themselves; otherwise its secondary-ready report in S3 implies both.
    pv_status = (peer_vrg or {}).get("status") or {}
    done["demoted"] = released or pv_status.get("state") == "Secondary" or (
        peer_role is not None and peer_role[0].startswith("secondary") and peer_role[1] >= ctx.base_generation
        and obs.primary == ctx.peer)
    done["final sync"] = released or pv_status.get("finalSyncComplete") is True
    taken = (obs.primary == ctx.target and (obs.generation or 0) > ctx.base_generation) or (
        t_st.get("currentPrimary") == ctx.target and int(t_st.get("generation") or 0) > ctx.base_generation)
    done["generation taken"] = taken
    t_role = obs.roles.get(ctx.target)
    vrg_primary = ((target_vrg or {}).get("status") or {}).get("state") == "Primary" if target_vrg is not None \
        else (t_role is not None and t_role[0] == "primary" and t_role[1] > ctx.base_generation)
    done["VRG primary"] = taken and vrg_primary
    if tdrc is not None:
        la = t_st.get("lastAction") or {}
        ready = (taken and _cond(tdrc, "ReadyForApplication").get("status") == "True"
                 and la.get("action") == ctx.action and la.get("result") == "Succeeded")
    else:
        # The target's API server is out of sight: its own report in S3 is the evidence left.
        ready = taken and t_role is not None and t_role[0] == "primary" and t_role[1] > ctx.base_generation
    done["ready"] = ready
    return done


def failure(ctx: Context, sides: Mapping[str, Side]) -> str | None:
    for s in sides.values():
        la = ((s.drc or {}).get("status") or {}).get("lastAction") or {}
        if (la.get("action") == ctx.action and la.get("targetCluster") == ctx.target and la.get("result") == "Failed"
                and int(la.get("specGeneration") or 0) >= ctx.spec_generations.get(s.name, 1 << 62)):
            return f"{s.name}: {la.get('message') or 'the action failed'}"
    return None


# -- the command ---------------------------------------------------------------------
def _patch_action(kube: Kube, ns: str, name: str, action: str | None, target: str | None) -> int:
    obj = kube.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "drcontrols", name,
                                                     {"spec": {"action": action, "targetCluster": target}},
                                                     _request_timeout=KUBE_TIMEOUT)
    return int(obj["metadata"].get("generation") or 0)


def _wait_until(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.5)
    return False


def _say(out: TextIO, t0: float, text: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {text}", file=out, flush=True)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    ns, name = parse_app(args.app)
    timeout = parse_timeout(args.timeout) if args.cmd != "cancel" else 0.0
    kubes = connect_kubes(args)
    if not kubes:
        raise CLIError(f"{args.cmd} needs the kubeconfig of at least one DR cluster (--kubeconfig-CLUSTER PATH)")
    if args.cmd == "cancel":
        return cancel(kubes, ns, name, out)
    action = "Failover" if args.cmd == "failover" else "Relocate"
    target_name: str = args.to
    sides = read_sides(kubes, ns, name, [])
    if not any(s.drc for s in sides.values()):
        reasons = "; ".join(f"{s.name}: {s.error}" for s in sides.values())
        print(f"ramenctl: cannot read DRControl {ns}/{name} on any cluster ({reasons})", file=sys.stderr)
        return EXIT_FAILED
    clusters = _policy_clusters(sides) or sorted(sides)
    if target_name not in clusters:
        raise CLIError(f"{target_name} is not a cluster of the app's DRPolicy ({', '.join(clusters)})", EXIT_USAGE)
    peer = next((c for c in clusters if c != target_name), "")
    sides = read_sides(kubes, ns, name, clusters)
    s3 = _resolve_s3(args, kubes, required=False)
    reader = CachedReader(s3) if s3 else None
    app = AppKey(ns, name)
    obs = observe_s3(reader, s3, app, clusters)
    statuses = [(s.drc or {}).get("status") or {} for s in sides.values()]
    base = obs.generation if obs.generation is not None else max(int(st.get("generation") or 0) for st in statuses)
    primary = obs.primary or next((st.get("currentPrimary") for st in statuses if st.get("currentPrimary")), None)
    t, p = sides[target_name], sides.get(peer) or Side(peer, None, error="unknown")

    def refuse(why: str) -> int:
        print(f"ramenctl: {action.lower()} of {ns}/{name} to {target_name} refused: {why}", file=sys.stderr)
        return EXIT_FAILED

    pending = [(s.name, (s.drc or {}).get("spec") or {}) for s in sides.values() if s.drc is not None]
    for cname, spec in pending:
        if spec.get("action") and (spec.get("action"), spec.get("targetCluster")) != (action, target_name):
            handled = ((sides[cname].drc or {}).get("status") or {}).get("handledAction") or {}
            if (handled.get("action"), handled.get("targetCluster")) != (spec.get("action"),
                                                                          spec.get("targetCluster")):
                return refuse(f"{cname} has {spec['action']}->{spec.get('targetCluster')} pending; "
                              f"run `ramenctl cancel {ns}/{name}` first")
    in_flight = any(spec.get("action") == action and spec.get("targetCluster") == target_name
                    and not _handled(sides, c, action, target_name) for c, spec in pending)
    if primary == target_name and not in_flight:
        print(f"{target_name} is already Primary of {ns}/{name} at generation {base}; nothing to do", file=out)
        return EXIT_OK

    # Where to set the action. Failover: the target (and the peer when it answers, so it stops too).
    # Relocate: both when reachable; the current Primary must be alive to demote.
    where = [s for s in (t, p) if s.reachable]
    if action == "Failover" and not t.reachable:
        return refuse(f"a failover is carried out by {target_name}'s operator, and {target_name}'s DRControl cannot "
                      f"be reached ({t.error})")
    if action == "Relocate" and not p.reachable:
        alive, heard = peer_heard(_cond(t.drc, "PeerConnected"), obs.heartbeat_age.get(peer), args.stale_after,
                                  s3_read=reader is not None)
        if not alive:
            return refuse(f"{peer} must demote first, but its API server is out of reach ({p.error}) and its operator "
                          f"is not heard ({heard}); if {peer} is lost, use `ramenctl failover {ns}/{name} --to "
                          f"{target_name}` (data written since the last replication may be lost)")
        print(f"note: {peer}'s API server is out of reach ({p.error}); its operator is alive and learns the "
              "relocate from the intent in S3", file=out)
    t0 = time.monotonic()
    spec_gens: dict[str, int] = {}
    for s in where:
        assert s.kube is not None and s.drc is not None
        spec = s.drc.get("spec") or {}
        if spec.get("action") == action and spec.get("targetCluster") == target_name \
                and _handled(sides, s.name, action, target_name):
            # The same action was done before: clear it and let the operator forget it, then ask again.
            _patch_action(s.kube, ns, name, None, None)
            _wait_until(_forgotten(s.kube, ns, name), 30)
        try:
            spec_gens[s.name] = _patch_action(s.kube, ns, name, action, target_name)
        except ApiException as e:
            return refuse(f"patching the DRControl on {s.name}: HTTP {e.status} {e.reason}")
        _say(out, t0, f"set {action}->{target_name} on {s.name} (spec generation {spec_gens[s.name]})")
    if not args.wait:
        return EXIT_OK
    vol = ((t.drc or p.drc or {}).get("spec") or {}).get("vrgSpec", {}).get("volSync") or {}
    volsync = isinstance(vol, Mapping) and vol.get("disabled") is False
    ctx = Context(action, target_name, peer, base, spec_gens)
    return wait(ctx, kubes, ns, name, clusters, reader, s3, app, steps_for(action, volsync), timeout,
                args.interval, t0, out)


def _forgotten(kube: Kube, ns: str, name: str) -> Callable[[], bool]:
    def check() -> bool:
        return not ((kube.get_drc(ns, name) or {}).get("status") or {}).get("handledAction")
    return check


def _handled(sides: Mapping[str, Side], cluster: str, action: str, target: str) -> bool:
    s = sides.get(cluster)
    handled = (((s.drc if s else None) or {}).get("status") or {}).get("handledAction") or {}
    return bool(handled.get("action") == action and handled.get("targetCluster") == target)


def wait(ctx: Context, kubes: list[Kube], ns: str, name: str, clusters: list[str], reader: CachedReader | None,
         s3: S3Target | None, app: AppKey, steps: list[Step], timeout: float, interval: float, t0: float,
         out: TextIO) -> int:
    last_msg: dict[str, str] = {}
    deadline = t0 + timeout
    while True:
        sides = read_sides(kubes, ns, name, clusters)
        obs = observe_s3(reader, s3, app, clusters)
        t = sides.get(ctx.target)
        vrg = _vrg(t, ns, name)
        peer_vrg = _vrg(sides.get(ctx.peer), ns, name) if ctx.action == "Relocate" else None
        done = evaluate(ctx, sides, obs, vrg, peer_vrg)
        for i, st in enumerate(steps):
            if st.done_at is None and done.get(st.name):
                now = time.monotonic()
                # A later step seen first implies the earlier ones (seen between two polls).
                for earlier in steps[:i]:
                    if earlier.done_at is None:
                        earlier.done_at, earlier.implied = now, True
                        _say(out, t0, f"{earlier.name} (implied by the next step)")
                st.done_at = now
                _say(out, t0, st.name)
        for s in sides.values():
            if s.kube is None:
                continue  # no kubeconfig for it: nothing to report from there
            msg = _cond(s.drc, "Ready").get("message") if s.drc else f"unreachable: {s.error}"
            if msg and last_msg.get(s.name) != msg:
                last_msg[s.name] = str(msg)
                _say(out, t0, f"  {s.name}: {msg}")
        if obs.s3_error and last_msg.get("s3") != obs.s3_error:
            last_msg["s3"] = obs.s3_error
            _say(out, t0, f"  S3: {obs.s3_error}")
        if steps[-1].done_at is not None:
            la = (((t.drc if t else None) or {}).get("status") or {}).get("lastAction") or {}
            took = f" (operator: {float(la['durationSeconds']):.1f}s)" if la.get("durationSeconds") is not None else ""
            print(f"{ctx.action} of {ns}/{name} to {ctx.target} succeeded in {time.monotonic() - t0:.1f}s{took}",
                  file=out)
            return EXIT_OK
        why = failure(ctx, sides)
        if why is not None:
            print(f"{ctx.action} of {ns}/{name} to {ctx.target} failed: {why}", file=out)
            return EXIT_FAILED
        if time.monotonic() >= deadline:
            pending = next(st.name for st in steps if st.done_at is None)
            print(f"timed out after {timeout:.0f}s waiting for: {pending}; the action stays set and the operators "
                  "keep going (`ramenctl cancel` withdraws it)", file=out)
            return EXIT_TIMEOUT
        time.sleep(interval)


def _vrg(side: Side | None, ns: str, name: str) -> dict[str, Any] | None:
    if side is None or not side.reachable or side.kube is None:
        return None
    try:
        obj: dict[str, Any] = side.kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, "volumereplicationgroups", name, _request_timeout=KUBE_TIMEOUT)
        return obj
    except Exception:  # no VRG yet, or the API blinked: the step waits
        return None


def cancel(kubes: list[Kube], ns: str, name: str, out: TextIO) -> int:
    sides = read_sides(kubes, ns, name, [])
    cleared, failed = 0, 0
    for s in sides.values():
        if not s.reachable or s.kube is None:
            print(f"{s.name}: not changed ({s.error})", file=out)
            failed += 1
            continue
        spec = (s.drc or {}).get("spec") or {}
        if not spec.get("action"):
            print(f"{s.name}: no action set", file=out)
            continue
        try:
            _patch_action(s.kube, ns, name, None, None)
        except ApiException as e:
            print(f"{s.name}: not changed (HTTP {e.status} {e.reason})", file=out)
            failed += 1
            continue
        cleared += 1
        note = ""
        if spec["action"] == "Relocate":
            note = "; a relocate whose Primary has already demoted completes anyway"
        print(f"{s.name}: cleared {spec['action']}->{spec.get('targetCluster')}{note}", file=out)
    if failed and not cleared:
        return EXIT_FAILED
    return EXIT_OK
