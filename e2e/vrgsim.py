"""VRG simulator: a TEST DOUBLE for Ramen's VolumeReplicationGroup controller.

ramen-p2p does not ship a VRG controller; in production Ramen's runs beside
our operator. The local clusters have no storage, so this process plays its
part for tests and the demo:

- honours `spec.replicationState` after a configurable delay, reporting
  `status.state` (Primary/Secondary), the conditions DataReady,
  DataProtected, ClusterDataReady and ClusterDataProtected with
  observedGeneration, and `status.observedGeneration`;
- completes the VolSync final-sync handshake (`prepareForFinalSync` ->
  `prepareForFinalSyncComplete`, `runFinalSync` -> `finalSyncComplete`);
- as Primary, uploads the VRG and one PV/PVC pair of metadata to S3 the way
  Ramen does (gzip-compressed JSON under `{ns}/{vrg}/v1alpha1.VolumeReplicationGroup/a`,
  `v1.PersistentVolume/{pv}`, `v1.PersistentVolumeClaim/{ns}/{pvc}`);
- appends every spec it sees and every state it reports to a JSON-lines
  timeline, from which tests check ordering invariants;
- acts on up to `--workers` VRGs at once, as Ramen's VRG controller runs up to
  `maxConcurrentReconciles` reconciles (50 in Ramen's default RamenConfig, 1
  when a config file leaves it out). One at a time, its S3 uploads and status
  patches for 1,000 VRGs ran end to end, and a whole-site failover measured
  this process rather than the operator.

Run: python -m e2e.vrgsim --kubeconfig K --cluster east --s3-config .localenv/s3.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import logging
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import config, watch
from kubernetes.client import CustomObjectsApi
from kubernetes.client.rest import ApiException

from e2e.localenv.clients import s3_client, s3_config

GROUP, VERSION, PLURAL = "ramendr.openshift.io", "v1alpha1", "volumereplicationgroups"
log = logging.getLogger("vrgsim")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Seen:
    """The spec fingerprint last seen for one VRG and since when (monotonic)."""

    fingerprint: tuple[Any, ...]
    since: float


def fingerprint(vrg: dict[str, Any]) -> tuple[Any, ...]:
    spec = vrg.get("spec") or {}
    return (vrg["metadata"].get("generation"), spec.get("replicationState"),
            bool(spec.get("prepareForFinalSync")), bool(spec.get("runFinalSync")))


def desired_status(vrg: dict[str, Any], now: str, uploaded: bool = True) -> dict[str, Any]:
    """What Ramen's VRG controller would report once it has acted on the spec (`uploaded` False:
    its S3 store did not take the metadata, which Ramen reports in ClusterDataProtected only)."""
    spec = vrg.get("spec") or {}
    gen = int(vrg["metadata"].get("generation") or 0)
    primary = spec.get("replicationState") == "primary"
    old = vrg.get("status") or {}

    def cond(ctype: str, ok: bool | None, reason: str) -> dict[str, Any]:
        prev = next((c for c in old.get("conditions", []) if c.get("type") == ctype), None)
        status = "Unknown" if ok is None else "True" if ok else "False"
        since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
        return {"type": ctype, "status": status, "reason": reason, "message": f"simulated: {reason}",
                "observedGeneration": gen, "lastTransitionTime": since}

    status: dict[str, Any] = {
        "state": "Primary" if primary else "Secondary",
        "observedGeneration": gen,
        "lastUpdateTime": now,
        # The reasons and the extra conditions Ramen's real VRG controller reports (seen beside it
        # with one VolRep PVC): as Secondary, restore and upload are "Unused"; AutoCleanup is False
        # and HooksReady Unknown in the normal case, which consumers must not read as trouble.
        "conditions": [
            cond("DataReady", True, "Ready" if primary else "Unused"),
            cond("DataProtected", True, "Replicating" if primary else "Unused"),
            cond("ClusterDataReady", True, "Restored" if primary else "Unused"),
            cond("ClusterDataProtected", uploaded or not primary,
                 ("Uploaded" if uploaded else "UploadError") if primary else "Unused"),
            cond("AutoCleanup", False, "Unused"),
            cond("HooksReady", None, "Initializing"),
        ],
        # Ramen reports the final-sync flags only while Primary (seen beside its real controller).
        "prepareForFinalSyncComplete": primary and bool(spec.get("prepareForFinalSync")),
        "finalSyncComplete": primary and bool(spec.get("runFinalSync")),
    }
    if primary:
        status["lastGroupSyncTime"] = now
        status["protectedPVCs"] = [{"name": f"{vrg['metadata']['name']}-data",
                                    "namespace": vrg["metadata"]["namespace"]}]
    return status


def _key(vrg: dict[str, Any]) -> tuple[str, str]:
    return vrg["metadata"]["namespace"], vrg["metadata"]["name"]


class Simulator:
    def __init__(self, api: CustomObjectsApi, cluster: str, s3: Any, bucket: str, key_prefix: str,
                 delay: float, timeline: Path | None, workers: int = 1) -> None:
        self.api, self.cluster, self.s3, self.bucket = api, cluster, s3, bucket
        self.key_prefix, self.delay, self.timeline = key_prefix, delay, timeline
        self.seen: dict[tuple[str, str], Seen] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="act") if workers > 1 else None
        self._acting: set[tuple[str, str]] = set()  # VRGs a worker is reporting on now
        self._timeline_lock = threading.Lock()
        self.stop = threading.Event()
        # The VRGs as a watch delivers them (a LIST several times a second would load the API server
        # and this process with every VRG however few change); None until the first LIST.
        self._vrgs: dict[tuple[str, str], dict[str, Any]] | None = None
        # What a step looks at: the VRGs the watch changed since the last step (all of them after a
        # LIST or a failed step) and those whose delay ends now. Scanning every VRG five times a
        # second cost this process CPU in proportion to the VRGs it holds, however few changed.
        self._dirty: set[tuple[str, str]] = set()
        self._all_dirty = True
        self._due: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.watch_seconds = 30  # how long one WATCH request runs before the next one goes on from it

    def record(self, event: str, vrg: dict[str, Any], **extra: Any) -> None:
        if self.timeline is None:
            return
        entry = {"t": time.time(), "cluster": self.cluster, "namespace": vrg["metadata"]["namespace"],
                 "name": vrg["metadata"]["name"], "event": event, **extra}
        with self._timeline_lock, self.timeline.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def upload(self, vrg: dict[str, Any]) -> None:
        ns, name = vrg["metadata"]["namespace"], vrg["metadata"]["name"]
        base = f"{self.key_prefix}{ns}/{name}/"
        pvc = f"{name}-data"
        objects = {
            "v1alpha1.VolumeReplicationGroup/a": vrg,
            f"v1.PersistentVolume/pv-{ns}-{pvc}": {"apiVersion": "v1", "kind": "PersistentVolume",
                                                   "metadata": {"name": f"pv-{ns}-{pvc}"}},
            f"v1.PersistentVolumeClaim/{ns}/{pvc}": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                                     "metadata": {"name": pvc, "namespace": ns}},
        }
        for key, body in objects.items():
            self.s3.put_object(Bucket=self.bucket, Key=base + key, Body=gzip.compress(json.dumps(body).encode()))

    def watch(self) -> None:
        """Keep `_vrgs` current: LIST, then WATCH from its resourceVersion, and WATCH again from the last
        one seen when a watch ends its time; LIST again only after an error (e.g. 410 Gone)."""
        rv: str | None = None
        while not self.stop.is_set():
            try:
                if rv is None:
                    listed = self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
                    with self._lock:
                        self._vrgs = {_key(v): v for v in listed["items"]}
                        self._all_dirty = True
                    rv = str(listed["metadata"]["resourceVersion"])
                stream = watch.Watch()
                for ev in stream.stream(self.api.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                                        resource_version=rv, timeout_seconds=self.watch_seconds):
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        rv = None  # e.g. 410 Gone: the resourceVersion expired, LIST again
                        break
                    rv = str(obj["metadata"]["resourceVersion"])
                    with self._lock:
                        if ev["type"] == "DELETED":
                            (self._vrgs or {}).pop(_key(obj), None)
                        elif self._vrgs is not None:
                            self._vrgs[_key(obj)] = obj
                        self._dirty.add(_key(obj))
                    if self.stop.is_set():
                        stream.stop()
            except Exception as e:  # an API outage: keep trying
                log.warning("watch failed: %s", e)
                rv = None
                self.stop.wait(1.0)

    def _changed(self) -> list[tuple[tuple[str, str], dict[str, Any] | None]] | None:
        """The VRGs to look at now, as held (None: gone), and forget that they were due."""
        with self._lock:
            if self._vrgs is None:
                return None
            # After a LIST, the VRGs deleted while no watch ran are among those the step has seen.
            keys = set(self._vrgs) | set(self.seen) if self._all_dirty else self._dirty
            self._all_dirty, self._dirty = False, set()
            now = time.monotonic()
            keys |= {k for k, due in self._due.items() if due <= now}
            for k in keys:
                self._due.pop(k, None)
            return [(k, self._vrgs.get(k)) for k in keys]

    def _again(self, key: tuple[str, str], after: float) -> None:
        """Look at `key` again `after` seconds from now."""
        with self._lock:
            self._due[key] = min(self._due.get(key, float("inf")), time.monotonic() + after)

    def _seen_patched(self, obj: dict[str, Any]) -> None:
        """What a status patch returned, so the next step does not act on the older copy again."""
        with self._lock:
            if self._vrgs is not None:
                self._vrgs[_key(obj)] = obj

    def step(self) -> None:
        items = self._changed()
        if items is None:
            return
        done = 0
        try:
            for key, vrg in items:
                self._step_one(key, vrg)
                done += 1
        except Exception:
            with self._lock:  # the rest are looked at again (run() waits a second first)
                self._dirty.update(k for k, _ in items[done:])
            raise

    def _step_one(self, key: tuple[str, str], vrg: dict[str, Any] | None) -> None:
        if vrg is None:
            self.seen.pop(key, None)
            return
        with self._lock:
            if key in self._acting:
                return  # its report is being written; the worker asks for another look when done
        if vrg["metadata"].get("deletionTimestamp"):
            self._finalize(vrg)
            return
        fp = fingerprint(vrg)
        seen = self.seen.get(key)
        if seen is None or seen.fingerprint != fp:
            self.seen[key] = seen = Seen(fp, time.monotonic())
            self.record("spec", vrg, replicationState=fp[1], generation=fp[0],
                        prepareForFinalSync=fp[2], runFinalSync=fp[3])
        wait = seen.since + self.delay - time.monotonic()
        if wait > 0:
            self._again(key, wait)
            return
        status = desired_status(vrg, _now())
        old = vrg.get("status") or {}
        if all(old.get(k) == v for k, v in status.items() if k not in ("lastUpdateTime", "lastGroupSyncTime")):
            return
        if self._pool is None:
            self._report(key, vrg, status)
            return
        with self._lock:
            self._acting.add(key)
        self._pool.submit(self._report_in_worker, key, vrg, status)

    def _report_in_worker(self, key: tuple[str, str], vrg: dict[str, Any], status: dict[str, Any]) -> None:
        try:
            self._report(key, vrg, status)
        except Exception as e:  # as in run(): an API outage is retried by a later step
            log.warning("report of %s/%s failed: %s", key[0], key[1], e)
        finally:
            with self._lock:
                self._acting.discard(key)
                self._dirty.add(key)

    def _report(self, key: tuple[str, str], vrg: dict[str, Any], status: dict[str, Any]) -> None:
        """Upload a Primary's metadata, then patch the status, as Ramen's VRG reconcile does."""
        if status["state"] == "Primary":
            try:
                self.upload(vrg)
            except Exception as e:  # its S3 store is down: Ramen still promotes, and says so
                log.warning("upload failed: %s", e)
                status = desired_status(vrg, _now(), uploaded=False)
                self._again(key, 1.0)  # and uploads again later, as Ramen's requeue does
        try:
            self._seen_patched(self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, key[0], PLURAL, key[1], {"status": status}))
        except ApiException as e:
            if e.status in (404, 409):
                return
            raise
        self.record("status", vrg, state=status["state"], generation=status["observedGeneration"])
        log.info("%s/%s: reported %s at generation %s", key[0], key[1], status["state"],
                 status["observedGeneration"])

    def _finalize(self, vrg: dict[str, Any]) -> None:
        """Ramen's VRG holds a finalizer; honour any on deletion so the object goes away."""
        if vrg["metadata"].get("finalizers"):
            try:
                self.api.patch_namespaced_custom_object(
                    GROUP, VERSION, vrg["metadata"]["namespace"], PLURAL, vrg["metadata"]["name"],
                    {"metadata": {"finalizers": None}})
            except ApiException as e:
                if e.status != 404:
                    raise

    def run(self, interval: float = 0.2) -> None:
        threading.Thread(target=self.watch, name="watch", daemon=True).start()
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as e:  # keep simulating through API or S3 outages
                log.warning("step failed: %s", e)
                self.stop.wait(1.0)
            self.stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.vrgsim", description="VRG simulator (a test double).")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--cluster", required=True)
    p.add_argument("--s3-config", required=True, help="JSON file with endpoint, region, bucket and keys")
    p.add_argument("--key-prefix", default="")
    p.add_argument("--delay", type=float, default=1.0, help="seconds before acting on a new spec")
    p.add_argument("--timeline", type=Path, default=None, help="append a JSON-lines timeline here")
    p.add_argument("--workers", type=int, default=1,
                   help="VRGs acted on at once, as Ramen's VRG controller runs maxConcurrentReconciles "
                        "reconciles (50 in its default RamenConfig, 1 when a config file leaves it out)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s vrgsim[{args.cluster}] %(message)s")
    api = CustomObjectsApi(config.new_client_from_config(config_file=args.kubeconfig))
    cfg = s3_config(Path(args.s3_config))
    sim = Simulator(api, args.cluster, s3_client(cfg), cfg["bucket"], args.key_prefix, args.delay, args.timeline,
                    workers=args.workers)
    signal.signal(signal.SIGTERM, lambda *_: sim.stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        sim.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
