"""VolSync double: a TEST DOUBLE of VolSync's rsync-TLS mover under Ramen's VRG controller.

The local clusters run no VolSync controller, no CSI driver and no kubelet, so nothing would
answer the ReplicationSource/ReplicationDestination objects Ramen's real VRG controller creates
for each VolSync PVC. This process plays VolSync's part (v0.11.0, the version Ramen's go.mod
requires), as its controllers report it, with one pass standing for a mover Job's run; no data
moves:

- the state machine of controllers/statemachine/machine.go: a sync starts
  (`lastSyncStartTime`, Synchronizing=True `SyncInProgress`), completes on the next pass
  (`lastSyncTime`, `lastSyncDuration`, `lastManualSync` set to `spec.trigger.manual`,
  `lastSyncStartTime` cleared), then waits (Synchronizing=False `WaitingForSchedule` with
  `nextSyncTime`, or `WaitingForManual`). A schedule syncs again once `nextSyncTime` passed, a
  manual trigger when it differs from `lastManualSync` (Ramen's final sync, `vrg-final-sync`);
  `spec.paused` stops it;
- a ReplicationDestination's Service `volsync-rsync-tls-dst-<rd>` (a real ClusterIP Service;
  the API server assigns the address) and `status.rsyncTLS.address`, as
  controllers/mover/rsynctls/mover.go publishes it, before its first sync;
- on a destination, each completed sync preserves an image: a VolumeSnapshot
  `<pvc>-<YYYYMMDDHHMMSS>` of the destination PVC, named in `status.latestImage`
  (controllers/volumehandler/volumehandler.go); the previous image is deleted unless Ramen
  marked it `volsync.backube/do-not-delete`. The snapshot's status (bound, readyToUse,
  restoreSize) is what the CSI snapshotter would report once the driver cut it: the double
  answers for that layer too, for its own snapshots only.

Everything above (which PVCs are VolSync's, the PSK Secret check, final-sync preparation, the
temporary PVC, PVC restore on promotion, the VRG's conditions) is Ramen's own code at work.

Run: python -m e2e.volsync_double --kubeconfig K [--interval 0.5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import signal
import sys
import threading
from typing import Any

from kubernetes import config
from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.rest import ApiException

VOLSYNC = ("volsync.backube", "v1alpha1")
SNAPSHOTS = ("snapshot.storage.k8s.io", "v1", "volumesnapshots")
DO_NOT_DELETE = "volsync.backube/do-not-delete"
RSYNC_TLS_PORT = 8000
log = logging.getLogger("volsync-double")

SYNCING = ("True", "SyncInProgress", "Synchronization in-progress")
SCHEDULED = ("False", "WaitingForSchedule", "Waiting for next scheduled synchronization")
MANUAL = ("False", "WaitingForManual", "Waiting for manual trigger")
_EVERY_N_MINUTES = re.compile(r"^\*/(\d+) \* \* \* \*$")


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(s: str | None) -> dt.datetime | None:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) if s else None


def next_schedule(cronspec: str, after: dt.datetime) -> dt.datetime:
    """The next start of `*/N * * * *` (what Ramen makes of a schedulingInterval in minutes) after `after`."""
    m = _EVERY_N_MINUTES.match(cronspec)
    step = int(m.group(1)) if m else 60
    base = after.replace(second=0, microsecond=0)
    minute = (base.minute // step + 1) * step
    return base.replace(minute=0) + dt.timedelta(minutes=minute)


def _synchronizing(old: list[dict[str, Any]], want: tuple[str, str, str], now: str) -> list[dict[str, Any]]:
    prev = next((c for c in old if c.get("type") == "Synchronizing"), None)
    status, reason, message = want
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
    return [c for c in old if c.get("type") != "Synchronizing"] + [
        {"type": "Synchronizing", "status": status, "reason": reason, "message": message,
         "lastTransitionTime": since}]


def machine_step(obj: dict[str, Any], now: dt.datetime) -> tuple[dict[str, Any], bool]:
    """VolSync's state machine, one pass: (new status, whether a sync completed in this pass)."""
    spec: dict[str, Any] = obj.get("spec") or {}
    old: dict[str, Any] = dict(obj.get("status") or {})
    status = dict(old)
    trigger: dict[str, Any] = spec.get("trigger") or {}
    manual, cron = str(trigger.get("manual") or ""), str(trigger.get("schedule") or "")
    conds: list[dict[str, Any]] = list(old.get("conditions") or [])
    t = _fmt(now)
    if spec.get("paused"):
        return old, False
    completed = False
    if old.get("lastSyncStartTime"):
        # The mover ran: the sync completes (transitionToCleaningUp).
        start = _parse(old["lastSyncStartTime"]) or now
        status.update(lastSyncTime=t, lastSyncDuration=f"{max(0.0, (now - start).total_seconds()):.0f}s")
        status["lastManualSync"] = manual
        if not manual:
            status.pop("lastManualSync", None)
        status.pop("lastSyncStartTime", None)
        completed = True
    elif not old.get("lastSyncTime"):
        status["lastSyncStartTime"] = t  # the initial state starts a sync at once
        conds = _synchronizing(conds, SYNCING, t)
    else:
        due = (manual and manual != old.get("lastManualSync")) or (
            not manual and cron and now >= (_parse(old.get("nextSyncTime")) or now))
        if due:
            status["lastSyncStartTime"] = t
            conds = _synchronizing(conds, SYNCING, t)
    if not status.get("lastSyncStartTime"):
        last = _parse(status.get("lastSyncTime")) or now
        if cron and not manual:
            status["nextSyncTime"] = _fmt(next_schedule(cron, last))
            conds = _synchronizing(conds, SCHEDULED, t)
        else:
            status.pop("nextSyncTime", None)
            conds = _synchronizing(conds, MANUAL, t)
    status["conditions"] = conds
    return status, completed


def _patch_status(api: CustomObjectsApi, plural: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    try:
        api.patch_namespaced_custom_object_status(*VOLSYNC, ns, plural, name, {"status": status})
    except ApiException as e:
        if e.status not in (404, 409):
            raise


def reconcile_sources(api: CustomObjectsApi, now: dt.datetime) -> int:
    written = 0
    for rs in api.list_cluster_custom_object(*VOLSYNC, "replicationsources").get("items", []):
        if rs["metadata"].get("deletionTimestamp") or "rsyncTLS" not in (rs.get("spec") or {}):
            continue
        status, done = machine_step(rs, now)
        status["rsyncTLS"] = {"keySecret": (rs["spec"]["rsyncTLS"] or {}).get("keySecret")}
        if status != (rs.get("status") or {}):
            _patch_status(api, "replicationsources", rs, status)
            written += 1
            if done:
                log.info("RS %s/%s: synced (%s)", rs["metadata"]["namespace"], rs["metadata"]["name"],
                         status.get("lastManualSync") or "scheduled")
    return written


def _service_address(core: CoreV1Api, rd: dict[str, Any]) -> str | None:
    """The rsync-TLS Service of the destination (created when missing) and its ClusterIP."""
    ns, name = rd["metadata"]["namespace"], f"volsync-rsync-tls-dst-{rd['metadata']['name']}"
    try:
        svc = core.read_namespaced_service(name, ns)
    except ApiException as e:
        if e.status != 404:
            raise
        owner = {"apiVersion": f"{VOLSYNC[0]}/{VOLSYNC[1]}", "kind": "ReplicationDestination",
                 "name": rd["metadata"]["name"], "uid": rd["metadata"]["uid"], "controller": True}
        svc = core.create_namespaced_service(ns, {
            "metadata": {"name": name, "ownerReferences": [owner],
                         "labels": {"app.kubernetes.io/created-by": "volsync"}},
            "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": name},
                     "ports": [{"name": "rsync-tls", "port": RSYNC_TLS_PORT, "protocol": "TCP",
                                "targetPort": "rsync-tls"}]}})
    ip = svc.spec.cluster_ip
    return str(ip) if ip and ip != "None" else None


def _preserve_image(api: CustomObjectsApi, rd: dict[str, Any], now: dt.datetime) -> dict[str, Any] | None:
    """A VolumeSnapshot of the destination PVC, reported ready; the reference for latestImage."""
    ns = rd["metadata"]["namespace"]
    opts = rd["spec"]["rsyncTLS"] or {}
    pvc = opts.get("destinationPVC") or f"volsync-{rd['metadata']['name']}-dst"
    name = f"{pvc}-{now.strftime('%Y%m%d%H%M%S')}"
    owner = {"apiVersion": f"{VOLSYNC[0]}/{VOLSYNC[1]}", "kind": "ReplicationDestination",
             "name": rd["metadata"]["name"], "uid": rd["metadata"]["uid"], "controller": True}
    snap = {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner],
                         "labels": {"app.kubernetes.io/created-by": "volsync"}},
            "spec": {"source": {"persistentVolumeClaimName": pvc},
                     "volumeSnapshotClassName": opts.get("volumeSnapshotClassName")}}
    try:
        api.create_namespaced_custom_object(*SNAPSHOTS[:2], ns, SNAPSHOTS[2], snap)
    except ApiException as e:
        if e.status != 409:
            raise
    capacity = str(opts.get("capacity") or "1Gi")
    api.patch_namespaced_custom_object_status(*SNAPSHOTS[:2], ns, SNAPSHOTS[2], name, {"status": {
        "boundVolumeSnapshotContentName": f"snapcontent-{rd['metadata']['uid'][:8]}-{name}"[:253],
        "creationTime": _fmt(now), "readyToUse": True, "restoreSize": capacity}})
    return {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": name}


def _drop_image(api: CustomObjectsApi, ns: str, image: dict[str, Any] | None) -> None:
    if not image:
        return
    try:
        snap = api.get_namespaced_custom_object(*SNAPSHOTS[:2], ns, SNAPSHOTS[2], image["name"])
        if (snap["metadata"].get("labels") or {}).get(DO_NOT_DELETE):
            return  # Ramen keeps it (it restores from it)
        api.delete_namespaced_custom_object(*SNAPSHOTS[:2], ns, SNAPSHOTS[2], image["name"])
    except ApiException as e:
        if e.status != 404:
            raise


def reconcile_destinations(api: CustomObjectsApi, core: CoreV1Api, now: dt.datetime) -> int:
    written = 0
    for rd in api.list_cluster_custom_object(*VOLSYNC, "replicationdestinations").get("items", []):
        if rd["metadata"].get("deletionTimestamp") or "rsyncTLS" not in (rd.get("spec") or {}):
            continue
        old = rd.get("status") or {}
        address = _service_address(core, rd)
        if address is None:
            continue  # no address yet: VolSync waits for it before anything else
        status, done = machine_step(rd, now) if (old.get("rsyncTLS") or {}).get("address") else (dict(old), False)
        status["rsyncTLS"] = {"address": address, "port": RSYNC_TLS_PORT,
                              "keySecret": (rd["spec"]["rsyncTLS"] or {}).get("keySecret")}
        if done:
            status["latestImage"] = _preserve_image(api, rd, now)
            if old.get("latestImage") != status["latestImage"]:
                _drop_image(api, rd["metadata"]["namespace"], old.get("latestImage"))
        if status != old:
            _patch_status(api, "replicationdestinations", rd, status)
            written += 1
            if done:
                log.info("RD %s/%s: synced, latestImage %s", rd["metadata"]["namespace"], rd["metadata"]["name"],
                         status["latestImage"]["name"])
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.volsync_double", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between passes (a mover's run)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    kube = config.new_client_from_config(config_file=args.kubeconfig)
    api, core = CustomObjectsApi(kube), CoreV1Api(kube)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        try:
            now = dt.datetime.now(dt.UTC)
            reconcile_sources(api, now)
            reconcile_destinations(api, core, now)
        except (ApiException, OSError) as e:  # API server restarting: try again next pass
            log.warning("pass failed: %s", e)
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
