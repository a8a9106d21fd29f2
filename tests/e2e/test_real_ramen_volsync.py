"""A VolSync app relocated on Ramen's REAL VRG controller, with nothing from a hub.

As in test_real_ramen.py, each cluster runs kube-controller-manager and Ramen's manager built from
the pinned source; below Ramen only test doubles answer: csi-addons (e2e/csiaddons_double.py) and
VolSync's rsync-TLS mover with the snapshots it takes (e2e/volsync_double.py). Both ramen-p2p
operators run with the same VolSync seed Secret, and nothing else: the PSK Secret and the
Secondary's rdSpec, which Ramen's hub used to supply, come from them.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e import harness, volumes
from e2e.localenv import LocalEnv, build, up
from e2e.localenv.clients import Cluster, kube_cluster
from e2e.localenv.procs import log_tail
from reconciler.plan.volsync import PSK_KEY, derive_psk, secret_name
from tests.e2e.conftest import DRPair, running_pair

CLUSTERS = ["east", "west"]
KEY_PREFIX = "p2p/"
INTERVAL = "1m"
APP_LABELS = {"app": "my-app"}  # the example DRControl's pvcSelector
SEED = secrets.token_bytes(32)
pytestmark = [pytest.mark.realenv, pytest.mark.slow]


@pytest.fixture(scope="module")
def ramen_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    tarball = build.ramen_tarball()
    if not tarball.exists():
        pytest.skip(f"Ramen's pinned source tarball is not at {tarball} (set ${build.RAMEN_TARBALL_ENV}); "
                    "Ramen's manager cannot be built without it")
    env = up(CLUSTERS, root=tmp_path_factory.mktemp("ramenvsenv"), with_ramen=True)
    yield env
    env.down()


@pytest.fixture(scope="module")
def real_clusters(ramen_env: LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cluster]]:
    clusters = {n: kube_cluster(n, ramen_env.kubeconfig(n)) for n in CLUSTERS}
    for c in clusters.values():
        harness.configure_cluster(c, ramen_env.s3, key_prefix=KEY_PREFIX, scheduling_interval=INTERVAL,
                                  test_crds=False, volsync_seed=SEED)
        volumes.install_classes(c, INTERVAL)
        volumes.install_volsync_classes(c)
    logdir = tmp_path_factory.mktemp("doubles")
    doubles = [harness.Process(f"{kind}-double-{n}", [
        sys.executable, "-m", f"e2e.{kind}_double", "--kubeconfig", str(c.kubeconfig), "--interval", "0.5"],
        logdir / f"{kind}-double-{n}.log") for n, c in clusters.items() for kind in ("csiaddons", "volsync")]
    for d in doubles:
        d.start()
    yield clusters
    for d in doubles:
        d.stop()


@pytest.fixture
def pair(ramen_env: LocalEnv, real_clusters: dict[str, Cluster], tmp_path: Path,
         request: pytest.FixtureRequest) -> Iterator[DRPair]:
    ns = f"vs-{secrets.token_hex(3)}"
    for c in real_clusters.values():
        c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    def ramen_logs() -> str:
        return "\n".join(f"--- ramen manager {n} ---\n" + log_tail(Path(ramen_env.component(f"{n}-ramen").log), 40)
                         for n in CLUSTERS)

    with running_pair(real_clusters, ns, ramen_env, tmp_path, request, on_failure=ramen_logs) as p:
        yield p
    for c in real_clusters.values():
        c.core.delete_namespace(ns)


def psk_secret(p: DRPair, cluster: str) -> bytes | None:
    try:
        s = p.clusters[cluster].core.read_namespaced_secret(secret_name("app"), p.namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return base64.b64decode((s.data or {}).get(PSK_KEY, ""))


def rd_pvcs(p: DRPair, cluster: str) -> list[str]:
    spec = (p.vrg(cluster) or {}).get("spec") or {}
    return [str((r.get("protectedPVC") or {}).get("name")) for r in (spec.get("volSync") or {}).get("rdSpec") or []]


def protected_by_volsync(p: DRPair, cluster: str) -> set[str]:
    return {str(x.get("name")) for x in ((p.vrg(cluster) or {}).get("status") or {}).get("protectedPVCs") or []
            if x.get("protectedByVolSync")}


def volsync_objects(p: DRPair, cluster: str, plural: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = p.clusters[cluster].custom.list_namespaced_custom_object(
        "volsync.backube", "v1alpha1", p.namespace, plural)["items"]
    return items


def bucket_bytes(p: DRPair) -> list[tuple[str, bytes]]:
    """Every object in the shared bucket (Ramen's and ours), gunzipped where Ramen compressed it."""
    out, token = [], None
    while True:
        kw: dict[str, Any] = {"Bucket": p.env.s3["bucket"], **({"ContinuationToken": token} if token else {})}
        page = p.s3.list_objects_v2(**kw)
        for o in page.get("Contents", []):
            body = p.s3.get_object(Bucket=p.env.s3["bucket"], Key=o["Key"])["Body"].read()
            with contextlib.suppress(OSError):  # not gzip: our own JSON
                body = gzip.decompress(body)
            out.append((str(o["Key"]), body))
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def test_a_volsync_app_relocates_on_ramens_vrg_with_the_psk_and_rd_spec_from_ramen_p2p(pair: DRPair) -> None:
    east, west = pair.clusters["east"], pair.clusters["west"]
    ns = pair.namespace
    volumes.static_pvc(east, ns, "data", APP_LABELS, storage_class=volumes.VOLSYNC_STORAGE_CLASS)
    # The running application (no kubelet starts it): Ramen's VolSync code sees the PVC in use.
    volumes.app_pod(east, ns, "app", "data")
    # On west, the static PV the destination PVC Ramen creates there will bind to.
    volumes.static_pv(west, ns, "data", storage_class=volumes.VOLSYNC_STORAGE_CLASS)
    pair.wait(lambda: volumes.pvc_phase(east, ns, "data") == "Bound", "PVC data bound on east", 60)
    pair.protect(preferred="east", volsync=True)

    # The PSK Secret, derived on each cluster from the shared seed: present, identical, Ramen's format.
    pair.wait(lambda: psk_secret(pair, "east") is not None and psk_secret(pair, "west") is not None,
              "the PSK Secret on both clusters", 60)
    psk = psk_secret(pair, "east")
    assert psk == psk_secret(pair, "west") == derive_psk(SEED, ns, "app").encode()
    pair.wait(lambda: "data" in protected_by_volsync(pair, "east"), "Ramen protects PVC data with VolSync", 120)
    pair.wait(lambda: pair.primary_ready("east", 1), "east Primary at generation 1 on Ramen's VRG", 180)
    # west's VRG names the Primary's VolSync PVC; Ramen builds a ReplicationDestination for it.
    pair.wait(lambda: rd_pvcs(pair, "west") == ["data"], "rdSpec on west's VRG", 120)
    pair.wait(lambda: any((rd.get("status") or {}).get("latestImage")
                          for rd in volsync_objects(pair, "west", "replicationdestinations")),
              "a ReplicationDestination on west with a latest image", 120)
    assert [rs["spec"]["rsyncTLS"]["keySecret"] for rs in volsync_objects(pair, "east", "replicationsources")] \
        == [secret_name("app")]
    pair.wait(lambda: pair.secondary_settled("west", 1), "west Secondary at generation 1", 120)
    # Ramen rewrites the VRG spec it reads (rdSpec included): both controllers running, it must settle.
    gens = {c: int(((pair.vrg(c) or {}).get("metadata") or {}).get("generation") or 0) for c in CLUSTERS}
    time.sleep(10)
    assert {c: int(((pair.vrg(c) or {}).get("metadata") or {}).get("generation") or 0) for c in CLUSTERS} == gens

    for c in CLUSTERS:
        harness.set_action(pair.clusters[c], ns, "Relocate", "west")
    pair.wait(lambda: harness.condition(pair.drc("east"), "ReadyForApplication").get("reason") == "Relocating",
              "east tells the application to stop", 120)
    # What the deployment tooling does on ReadyForApplication False: the application leaves east.
    east.core.delete_namespaced_pod("app", ns, grace_period_seconds=0)
    east.core.delete_namespaced_persistent_volume_claim("data", ns)
    final_syncs: set[str] = set()

    def relocated() -> bool:
        # Ramen removes the ReplicationSource once east is Secondary: note the final sync while it is there.
        final_syncs.update(str((rs.get("status") or {}).get("lastManualSync"))
                           for rs in volsync_objects(pair, "east", "replicationsources"))
        return pair.primary_ready("west", 2)

    pair.wait(relocated, "west Primary at generation 2 after the relocate", 300)
    assert "vrg-final-sync" in final_syncs, "west became Primary without Ramen's final sync on east"
    last = (pair.drc("west").get("status") or {}).get("lastAction") or {}
    assert (last.get("action"), last.get("result")) == ("Relocate", "Succeeded")
    assert volumes.pvc_phase(west, ns, "data") == "Bound"
    # The roles turned: east's VRG now names west's VolSync PVC, and west's promoted VRG has let go of it.
    pair.wait(lambda: rd_pvcs(pair, "east") == ["data"] and rd_pvcs(pair, "west") == [],
              "rdSpec moved from west's VRG to east's", 120)

    # The key never travelled: neither the PSK nor the seed is anywhere in the bucket.
    assert psk is not None
    for key, body in bucket_bytes(pair):
        for secret in (psk, psk.split(b":", 1)[1], SEED, SEED.hex().encode(), base64.b64encode(SEED)):
            assert secret not in body, f"{key} holds key material"
