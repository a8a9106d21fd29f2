"""csi-addons double: a TEST DOUBLE for the CSI replication layer under Ramen's VRG controller.

The local clusters have no storage driver and no csi-addons controller, so nothing would ever
answer the VolumeReplication objects Ramen's real VRG controller creates for each protected PVC.
This process plays csi-addons' part, and only that: it reports on every
`replication.storage.openshift.io/v1alpha1` VolumeReplication what csi-addons reports once the
driver has acted on `spec.replicationState`:

- primary: `state: Primary`, conditions Validated=True (PrerequisiteMet), Completed=True
  (Promoted), Degraded=False (Healthy), Resyncing=False (NotResyncing), and a `lastSyncTime`;
- secondary: first what csi-addons reports right after a demotion (`state: Secondary`,
  Completed=True (Demoted), Degraded=True (VolumeDegraded), Resyncing=False), then, one pass
  later, the volume in sync (Degraded=False (Healthy), Resyncing=False);

each condition with `observedGeneration`, and `status.observedGeneration`, as csi-addons does
(the conditions and messages follow csi-addons' internal/controller/replication.storage/status.go).

It also does the one thing the driver's external-provisioner does that Ramen relies on: a PV of
the double's driver that is Released with reclaim policy Delete is deleted. (Ramen retains a
protected PV and gives it back its Delete policy once a demoted PVC is deleted; a PV left behind
would make Ramen refuse to restore the same PV from S3 when the app comes back.)
Everything above the VolumeReplication (PVC selection, PV/PVC upload to and restore from S3,
the VRG's conditions) is Ramen's own code at work.

Run: python -m e2e.csiaddons_double --kubeconfig K [--interval 0.5] [--driver NAME]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from typing import Any

import urllib3
from kubernetes import config
from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "replication.storage.openshift.io", "v1alpha1", "volumereplications"
log = logging.getLogger("csiaddons-double")

# csi-addons' messages are "<source> <message>"; for a PVC data source the source is "volume".
PROMOTED = ("Completed", "True", "Promoted", "volume is promoted to primary and replicating to secondary")
DEMOTED = ("Completed", "True", "Demoted", "volume is demoted to secondary")
HEALTHY = ("Degraded", "False", "Healthy", "volume is healthy")
DEGRADED = ("Degraded", "True", "VolumeDegraded", "volume is degraded")
NOT_RESYNCING = ("Resyncing", "False", "NotResyncing", "volume is not resyncing")
VALIDATED = ("Validated", "True", "PrerequisiteMet", "volume is validated and met all prerequisites")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(old: list[dict[str, Any]], wanted: list[tuple[str, str, str, str]], gen: int,
                now: str) -> list[dict[str, Any]]:
    """Conditions as metav1.Condition: lastTransitionTime moves only when the status flips."""
    by_type = {c.get("type"): c for c in old}
    out = []
    for ctype, status, reason, message in wanted:
        prev = by_type.get(ctype)
        since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
        out.append({"type": ctype, "status": status, "reason": reason, "message": message,
                    "observedGeneration": gen, "lastTransitionTime": since})
    return out


def desired_status(vr: dict[str, Any], now: str) -> dict[str, Any] | None:
    """The status csi-addons would report next for this VolumeReplication; None when it has nothing to add."""
    gen = int(vr["metadata"].get("generation") or 0)
    want = str((vr.get("spec") or {}).get("replicationState") or "")
    old: dict[str, Any] = vr.get("status") or {}
    conds: list[dict[str, Any]] = old.get("conditions") or []
    if want == "primary":
        status = {"state": "Primary", "observedGeneration": gen, "message": "volume is promoted",
                  "conditions": _conditions(conds, [PROMOTED, HEALTHY, NOT_RESYNCING, VALIDATED], gen, now),
                  "lastSyncTime": old.get("lastSyncTime") or now}
    elif want in ("secondary", "resync"):
        demoted_before = old.get("state") == "Secondary" and int(old.get("observedGeneration") or 0) == gen
        degraded = HEALTHY if demoted_before else DEGRADED
        status = {"state": "Secondary", "observedGeneration": gen, "message": "volume is demoted",
                  "conditions": _conditions(conds, [DEMOTED, degraded, NOT_RESYNCING], gen, now)}
    else:
        return None
    same = {k: old.get(k) for k in status} == status
    return None if same else status


def delete_released_volumes(core: CoreV1Api, driver: str) -> int:
    """Delete Released PVs of `driver` whose reclaim policy is Delete, as its external-provisioner would."""
    deleted = 0
    for pv in core.list_persistent_volume().items:
        csi = pv.spec.csi
        if csi is None or csi.driver != driver or pv.metadata.deletion_timestamp is not None:
            continue
        if pv.status.phase == "Released" and pv.spec.persistent_volume_reclaim_policy == "Delete":
            try:
                core.delete_persistent_volume(pv.metadata.name)
                deleted += 1
                log.info("PV %s: deleted (Released, reclaim policy Delete)", pv.metadata.name)
            except ApiException as e:
                if e.status != 404:
                    raise
    return deleted


def reconcile_once(api: CustomObjectsApi) -> int:
    """One pass over every VolumeReplication; returns how many statuses were written."""
    written = 0
    for vr in api.list_cluster_custom_object(GROUP, VERSION, PLURAL).get("items", []):
        if vr["metadata"].get("deletionTimestamp"):
            continue
        status = desired_status(vr, _now())
        if status is None:
            continue
        ns, name = vr["metadata"]["namespace"], vr["metadata"]["name"]
        try:
            api.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, {"status": status})
            written += 1
            log.info("%s/%s: %s (generation %s)", ns, name, status["state"], status["observedGeneration"])
        except ApiException as e:
            if e.status not in (404, 409):
                raise
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.csiaddons_double", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between passes (a driver's latency)")
    p.add_argument("--driver", default="csi-double.ramen-p2p.test", help="the CSI driver name it answers for")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    kube = config.new_client_from_config(config_file=args.kubeconfig)
    api, core = CustomObjectsApi(kube), CoreV1Api(kube)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        try:
            reconcile_once(api)
            delete_released_volumes(core, args.driver)
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as e:  # API server restarting: next pass
            log.warning("pass failed: %s", e)
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
