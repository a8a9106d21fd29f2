"""`make demo`: two local clusters and S3, both operators, one protected app through relocate and failover,
then the loss of a site together with its S3 store (dr-state over three stores).

Ramen's real VRG controller (its manager in dr-cluster mode) runs on each cluster, beside
kube-controller-manager; the app has a real PVC bound to a static PV. Only the CSI replication
layer is a test double (e2e/csiaddons_double.py answers Ramen's VolumeReplications as csi-addons
would), and the demo plays the deployment tooling: where ReadyForApplication turns False, the
app's PVC is deleted, as Argo CD would prune it. The demo runs in its own environment under
`.demo/` and stops everything it started, also on failure.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness, volumes
from e2e.localenv import LocalEnv, StartError, up
from e2e.localenv.clients import Cluster, kube_cluster

ROOT = Path(__file__).resolve().parent.parent
DEMO_ROOT = ROOT / ".demo"
APP_NS = "busybox"
TIMING = harness.Timing(poll="2s", heartbeat="2s", stale_after="8s", sim_delay=1.0)
INTERVAL = "1m"
KEY_PREFIX = "p2p/"  # apart from Ramen's own {ns}/{vrg}/ objects in the shared bucket
APP_LABELS = {"app": "my-app"}  # the example DRControl's pvcSelector


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


class Demo:
    def __init__(self, env: LocalEnv, logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.clusters: dict[str, Cluster] = {c: kube_cluster(c, env.kubeconfig(c)) for c in ("east", "west")}
        self.operators = {c: harness.operator_process(c, env.kubeconfig(c), logdir, TIMING) for c in self.clusters}
        self.doubles = {c: harness.Process(f"csiaddons-double-{c}", [
            sys.executable, "-m", "e2e.csiaddons_double", "--kubeconfig", str(env.kubeconfig(c))],
            logdir / f"csiaddons-double-{c}.log") for c in self.clusters}

    def table(self) -> str:
        rows = [harness.summary_row(c, harness.get_drc(k, APP_NS), harness.get_vrg(k, APP_NS))
                for c, k in self.clusters.items()]
        return harness.format_table(rows)

    def diagnostics(self) -> str:
        parts = [self.table()]
        for p in (*self.operators.values(), *self.doubles.values()):
            parts.append(f"--- last lines of {p.log} ---\n{p.tail(10)}")
        return "\n".join(parts)

    def step(self, what: str, pred: Callable[[], bool], timeout: float = 90) -> None:
        took = harness.wait_for(pred, timeout, what, self.diagnostics)
        print(f"    done in {took:.1f}s: {what}\n")
        print(self.table(), flush=True)

    def step_one(self, cluster: str, what: str, pred: Callable[[], bool], timeout: float = 180) -> None:
        """A step while the other cluster's API server is down: only `cluster`'s row is shown."""
        took = harness.wait_for(pred, timeout, what, lambda: self.diagnostics_of(cluster))
        print(f"    done in {took:.1f}s: {what}\n")
        print(self.table_of(cluster), flush=True)

    def table_of(self, cluster: str) -> str:
        k = self.clusters[cluster]
        return harness.format_table([harness.summary_row(cluster, harness.get_drc(k, APP_NS),
                                                         harness.get_vrg(k, APP_NS))])

    def diagnostics_of(self, cluster: str) -> str:
        parts = [self.table_of(cluster)]
        for p in (self.operators[cluster], self.doubles[cluster]):
            parts.append(f"--- last lines of {p.log} ---\n{p.tail(10)}")
        return "\n".join(parts)

    def primary_ready(self, cluster: str, generation: int) -> bool:
        return harness.primary_ready(self.clusters[cluster], APP_NS, generation)

    def secondary_settled(self, cluster: str, generation: int) -> bool:
        return harness.secondary_settled(self.clusters[cluster], APP_NS, generation)

    def app_leaves(self, cluster: str) -> None:
        """What Argo CD does once ReadyForApplication is False on `cluster`: the app (its PVC) goes."""
        c = self.clusters[cluster]
        harness.wait_for(lambda: not harness.ready_for_application(harness.get_drc(c, APP_NS)), 120,
                         f"ReadyForApplication False on {cluster}", self.diagnostics)
        print(f"    {cluster}: ReadyForApplication is False; the deployment tooling removes the app (PVC data)")
        try:
            c.core.delete_namespaced_persistent_volume_claim("data", APP_NS)
        except ApiException as e:
            if e.status != 404:
                raise

    def run(self) -> None:
        say("configuring both clusters: CRDs, S3 profile Secret and ConfigMaps, DRClusters, DRPolicy, "
            "storage and replication classes")
        for c in self.clusters.values():
            # dr-state over three stores: the shared bucket (which also holds the other coordination
            # objects and Ramen's metadata), a bucket in east's site (s3-2) and one in west's (s3-3).
            harness.configure_cluster(c, self.env.s3, key_prefix=KEY_PREFIX, scheduling_interval=INTERVAL,
                                      test_crds=False, quorum=self.env.s3_extra)
            volumes.install_classes(c, INTERVAL)
        say("starting the csi-addons doubles (under Ramen's real VRG controller) and both operators")
        for p in (*self.doubles.values(), *self.operators.values()):
            p.start()
            print(f"    {p.name}: log {p.log}")

        say(f"protecting the app: a PVC bound on east, a DRControl in namespace {APP_NS} on both clusters, "
            "preferredCluster east")
        for c in self.clusters.values():
            try:
                c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=APP_NS)))
            except ApiException as e:
                if e.status != 409:
                    raise
        east = self.clusters["east"]
        volumes.static_pvc(east, APP_NS, "data", APP_LABELS)
        harness.wait_for(lambda: volumes.pvc_phase(east, APP_NS, "data") == "Bound", 60, "PVC data bound on east")
        for c in self.clusters.values():
            c.custom.create_namespaced_custom_object(harness.GROUP, harness.VERSION, APP_NS, "drcontrols",
                                                     harness.drcontrol(APP_NS, "app", "east"))
        self.step("east is Primary and ReadyForApplication at generation 1",
                  lambda: self.primary_ready("east", 1) and self.secondary_settled("west", 1), 180)

        say("relocating to west (planned, no data loss): spec.action=Relocate, targetCluster=west on both clusters")
        for c in self.clusters.values():
            harness.set_action(c, APP_NS, "Relocate", "west")
        self.app_leaves("east")
        self.step("west is Primary at generation 2 with the PVC restored from S3; east demoted first",
                  lambda: self.primary_ready("west", 2) and self.secondary_settled("east", 2)
                  and volumes.pvc_phase(self.clusters["west"], APP_NS, "data") == "Bound", 180)

        say("west is lost: stopping west's operator; failing over to east (spec.action=Failover on east only)")
        self.operators["west"].kill()
        harness.set_action(self.clusters["east"], APP_NS, "Failover", "east")
        self.step("east is Primary at generation 3 without any word from west, PVC restored from S3",
                  lambda: self.primary_ready("east", 3) and volumes.pvc_phase(east, APP_NS, "data") == "Bound", 180)
        print("    (west's row is what its stopped operator last wrote: nobody updates it while it is down)")

        say("west comes back: it reads generation 3 from S3, demotes itself and acknowledges")
        self.operators["west"].start()
        self.app_leaves("west")
        self.step("west is Secondary at generation 3; only east is ready for the application",
                  lambda: self.secondary_settled("west", 3) and self.primary_ready("east", 3), 180)

        say("east's site is lost with its bucket: stopping east's operator, its API server and the S3 server "
            "of east's site (s3-2); failing over to west through the two stores left")
        self.operators["east"].kill()
        self.env.stop("east-apiserver")
        self.env.stop("s3-2")
        harness.set_action(self.clusters["west"], APP_NS, "Failover", "west")
        west = self.clusters["west"]
        self.step_one("west", "west is Primary at generation 4 with one store of three gone, PVC restored from S3",
                      lambda: self.primary_ready("west", 4) and volumes.pvc_phase(west, APP_NS, "data") == "Bound")

        say("east's site returns: it reads generation 4 through the quorum, demotes itself and acknowledges")
        self.env.start("s3-2")
        self.env.start("east-apiserver")
        self.operators["east"].start()
        self.app_leaves("east")
        self.step("east is Secondary at generation 4; only west is ready for the application",
                  lambda: self.secondary_settled("east", 4) and self.primary_ready("west", 4), 180)

    def stop(self) -> None:
        for p in (*self.operators.values(), *self.doubles.values()):
            p.stop()


def main() -> int:
    started = time.monotonic()
    say("building (cached after the first run) and starting two clusters, each with kube-controller-manager "
        "and Ramen's manager, and three S3 servers (a shared bucket and one per site)")
    try:
        env = up(["east", "west"], root=DEMO_ROOT, with_ramen=True, s3_servers=3)
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
        say("stopping operators, csi-addons doubles, Ramen's managers, clusters and S3")
        demo.stop()
        env.down()
    print(f"\n{'demo succeeded' if ok else 'demo failed'} in {time.monotonic() - started:.0f}s; logs in {logdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
