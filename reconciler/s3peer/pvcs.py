"""The VolSync-protected PVCs a Primary publishes in its cluster-status (`details.volSyncPVCs`).

The Secondary builds its VRG's `spec.volSync.rdSpec` from them, as Ramen's hub builds it from the
Primary VRG's `status.protectedPVCs` (drplacementcontrolvolsync.go, resetRDSpec): every entry
with `protectedByVolSync`, without its conditions and last-sync figures. Those are dropped on
the writer's side too, so the list (part of the content hash) changes only when a PVC's
description does, not on every sync.

What is read from the bucket is checked field by field: a list the peer (or anyone with the S3
key) made up is refused as a whole (CorruptObject), never half used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.s3peer.envelope import canonical_json
from reconciler.s3peer.errors import CorruptObject

DETAILS_KEY = "volSyncPVCs"
#: More PVCs than one application protects; a Secondary VRG with more would be refused anyway.
MAX_PVCS = 100
#: Per entry, labels and annotations included (a last-applied-configuration annotation can be large).
MAX_ENTRY_BYTES = 16 * 1024

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([eE][0-9]+|[KMGTPE]i?|m|k)?$")
_ACCESS_MODES = frozenset({"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"})
_VOLUME_MODES = frozenset({"Filesystem", "Block"})
_IDENTIFIERS = ("storageID", "replicationID")
_STRING_FIELDS = ("storageClassName", "csiProvisioner")
#: The ProtectedPVC fields an rdSpec entry carries (Ramen's api/v1alpha1 ProtectedPVC, less status).
FIELDS = frozenset({"name", "namespace", "protectedByVolSync", "accessModes", "resources", "volumeMode",
                    "labels", "annotations", *_IDENTIFIERS, *_STRING_FIELDS})


def from_vrg_status(protected_pvcs: Any) -> list[dict[str, Any]]:
    """The VolSync entries of a VRG's `status.protectedPVCs`, reduced to what an rdSpec needs, sorted."""
    out = []
    for p in protected_pvcs if isinstance(protected_pvcs, list) else []:
        if isinstance(p, Mapping) and p.get("protectedByVolSync") is True:
            # Kept as Ramen serialises them (`resources: {}`, `storageID: {id: ""}`): its own full
            # updates of the VRG write them back that way, and a difference would be a write fight.
            out.append({k: v for k, v in p.items() if k in FIELDS and v is not None})
    return sorted(out, key=lambda p: (str(p.get("namespace", "")), str(p.get("name", ""))))


def fits(pvcs: list[dict[str, Any]]) -> str:
    """Why this list cannot be published (a reader would refuse it), or ""."""
    try:
        parse(pvcs)
    except CorruptObject as e:
        return str(e)
    return ""


def _str_map(v: Any, where: str, key: str | None) -> None:
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) and len(k) <= 317
                                          for k, x in v.items()):
        raise CorruptObject(f"{where} must map strings to strings", key=key)


def _entry(i: int, p: Any, key: str | None) -> dict[str, Any]:
    where = f"{DETAILS_KEY}[{i}]"
    if not isinstance(p, dict):
        raise CorruptObject(f"{where} must be an object", key=key)
    unknown = sorted(set(p) - FIELDS)
    if unknown:
        raise CorruptObject(f"{where} has unknown fields {unknown[:5]}", key=key)
    if len(canonical_json(p)) > MAX_ENTRY_BYTES:
        raise CorruptObject(f"{where} is over {MAX_ENTRY_BYTES} bytes", key=key)
    name, ns = p.get("name"), p.get("namespace")
    if not (isinstance(name, str) and len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        raise CorruptObject(f"{where}.name must be a DNS-1123 subdomain", key=key)
    if not (isinstance(ns, str) and len(ns) <= 63 and _DNS_LABEL.match(ns)):
        raise CorruptObject(f"{where}.namespace must be a DNS-1123 label", key=key)
    if p.get("protectedByVolSync") is not True:
        raise CorruptObject(f"{where}.protectedByVolSync must be true", key=key)
    for f in _STRING_FIELDS:
        if f in p and not (isinstance(p[f], str) and len(p[f]) <= 253):
            raise CorruptObject(f"{where}.{f} must be a short string", key=key)
    modes = p.get("accessModes", [])
    if not (isinstance(modes, list) and len(modes) <= 4 and all(m in _ACCESS_MODES for m in modes)):
        raise CorruptObject(f"{where}.accessModes must be a list of {sorted(_ACCESS_MODES)}", key=key)
    if "volumeMode" in p and p["volumeMode"] not in _VOLUME_MODES:
        raise CorruptObject(f"{where}.volumeMode must be one of {sorted(_VOLUME_MODES)}", key=key)
    res = p.get("resources", {})
    if not isinstance(res, dict) or set(res) - {"requests", "limits"}:
        raise CorruptObject(f"{where}.resources may hold only requests and limits", key=key)
    for part in res.values():
        if not (isinstance(part, dict) and all(isinstance(k, str) and isinstance(q, str) and _QUANTITY.match(q)
                                               for k, q in part.items())):
            raise CorruptObject(f"{where}.resources must map names to quantities", key=key)
    for f in ("labels", "annotations"):
        if f in p:
            _str_map(p[f], f"{where}.{f}", key)
    for f in _IDENTIFIERS:
        # Ramen's Identifier: {id, modes}; kept as given once its shape is right.
        ident = p.get(f)
        if ident is not None and not (isinstance(ident, dict) and set(ident) <= {"id", "modes"}
                                      and isinstance(ident.get("id", ""), str)
                                      and isinstance(ident.get("modes", []), list)
                                      and all(isinstance(m, str) for m in ident.get("modes", []))):
            raise CorruptObject(f"{where}.{f} must be {{id, modes}}", key=key)
    return p


def parse(raw: Any, key: str | None = None) -> list[dict[str, Any]]:
    """A published list, checked; CorruptObject names the first problem."""
    if not isinstance(raw, list):
        raise CorruptObject(f"{DETAILS_KEY} must be a list", key=key)
    if len(raw) > MAX_PVCS:
        raise CorruptObject(f"{DETAILS_KEY} has {len(raw)} entries, over {MAX_PVCS}", key=key)
    out = [_entry(i, p, key) for i, p in enumerate(raw)]
    names = {(p["namespace"], p["name"]) for p in out}
    if len(names) != len(out):
        raise CorruptObject(f"{DETAILS_KEY} names a PVC twice", key=key)
    return out


def rd_spec(pvcs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`spec.volSync.rdSpec` for a Secondary VRG: one VolSyncReplicationDestinationSpec per PVC."""
    return [{"protectedPVC": dict(p)} for p in pvcs]
