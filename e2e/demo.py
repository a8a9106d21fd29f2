"""`make demo`: two local clusters and S3, both operators, one protected app through relocate and failover.

Every part is real except the VRG controller, which the VRG simulator (a test
double for Ramen's) plays on each cluster. The demo runs in its own
environment under `.demo/` and stops everything it started, also on failure.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.localenv import LocalEnv, StartError, up
from e2e.localenv.clients import Cluster, kube_cluster

ROOT = Path(__file__).resolve().parent.parent
DEMO_ROOT = ROOT / ".demo"
APP_NS = "busybox"
TIMING = harness.Timing(poll="2s", heartbeat="2s", stale_after="8s", sim_delay=1.0)


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


class Demo:
    def __init__(self, env: LocalEnv, logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.clusters: dict[str, Cluster] = {c: kube_cluster(c, env.kubeconfig(c)) for c in ("east", "west")}
        self.operators = {c: harness.operator_process(c, env.kubeconfig(c), logdir, TIMING) for c in self.clusters}
        self.simulators = {c: harness.simulator_process(c, env.kubeconfig(c), env.s3_config_file(), logdir, TIMING)
                           for c in self.clusters}

    def table(self) -> str:
        rows = [harness.summary_row(c, harness.get_drc(k, APP_NS), harness.get_vrg(k, APP_NS))
                for c, k in self.clusters.items()]
        return harness.format_table(rows)

    def diagnostics(self) -> str:
        parts = [self.table()]
        for p in (*self.operators.values(), *self.simulators.values()):
            parts.append(f"--- last lines of {p.log} ---\n{p.tail(10)}")
        return "\n".join(parts)

    def step(self, what: str, pred: Callable[[], bool], timeout: float = 90) -> None:
        took = harness.wait_for(pred, timeout, what, self.diagnostics)
        print(f"    done in {took:.1f}s: {what}\n")
        print(self.table(), flush=True)

    def primary_ready(self, cluster: str, generation: int) -> bool:
        return harness.primary_ready(self.clusters[cluster], APP_NS, generation)

    def secondary_settled(self, cluster: str, generation: int) -> bool:
        return harness.secondary_settled(self.clusters[cluster], APP_NS, generation)

    def run(self) -> None:
        say("configuring both clusters: CRDs, S3 profile Secret and ConfigMap, DRClusters, DRPolicy")
        for c in self.clusters.values():
            harness.configure_cluster(c, self.env.s3)
        say("starting the VRG simulators (test doubles for Ramen's VRG controller) and both operators")
        for p in (*self.simulators.values(), *self.operators.values()):
            p.start()
            print(f"    {p.name}: log {p.log}")

        say(f"protecting the app: a DRControl in namespace {APP_NS} on both clusters, preferredCluster east")
        for c in self.clusters.values():
            try:
                c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=APP_NS)))
            except ApiException as e:
                if e.status != 409:
                    raise
            c.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, APP_NS, "drcontrols",
                                                     harness.drcontrol(APP_NS, "app", "east"))
        self.step("east is Primary and ReadyForApplication at generation 1",
                  lambda: self.primary_ready("east", 1) and self.secondary_settled("west", 1))

        say("relocating to west (planned, no data loss): spec.action=Relocate, targetCluster=west on both clusters")
        for c in self.clusters.values():
            harness.set_action(c, APP_NS, "Relocate", "west")
        self.step("west is Primary at generation 2; east demoted first",
                  lambda: self.primary_ready("west", 2) and self.secondary_settled("east", 2))

        say("west is lost: stopping west's operator; failing over to east (spec.action=Failover on east only)")
        self.operators["west"].kill()
        harness.set_action(self.clusters["east"], APP_NS, "Failover", "east")
        self.step("east is Primary at generation 3 without any word from west", lambda: self.primary_ready("east", 3))
        print("    (west's row is what its stopped operator last wrote: nobody updates it while it is down)")

        say("west comes back: it reads generation 3 from S3, demotes itself and acknowledges")
        self.operators["west"].start()
        self.step("west is Secondary at generation 3; only east is ready for the application",
                  lambda: self.secondary_settled("west", 3) and self.primary_ready("east", 3))

    def stop(self) -> None:
        for p in (*self.operators.values(), *self.simulators.values()):
            p.stop()


def main() -> int:
    started = time.monotonic()
    say("building (cached after the first run) and starting two clusters and an S3 server")
    try:
        env = up(["east", "west"], root=DEMO_ROOT)
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    logdir = Path(tempfile.mkdtemp(prefix="ramen-p2p-demo-"))
    demo = Demo(env, logdir)
    ok = False
    try:
        demo.run()
        ok = True
    except (TimeoutError, ApiException) as e:
        print(f"\nDEMO FAILED: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        say("stopping operators, simulators, clusters and S3")
        demo.stop()
        env.down()
    print(f"\n{'demo succeeded' if ok else 'demo failed'} in {time.monotonic() - started:.0f}s; logs in {logdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
