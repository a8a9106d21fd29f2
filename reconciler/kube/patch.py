"""Pure patch computation: what to send to turn a live object into the desired one.

`desired` is read as a JSON merge patch (RFC 7386) over `live`: the fields it
names are set, a None value removes a field, everything else (server
defaults, other writers' fields) is left alone. The result is a JSON patch
(RFC 6902) from `live` to that target; an empty list means nothing to send.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from reconciler.kube.jsoncopy import json_copy
from reconciler.kube.resources import Obj

# Fields the server owns or that identify the object: never patched.
IDENTITY_FIELDS = frozenset({"apiVersion", "kind"})
SERVER_METADATA = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"}
)

Op = dict[str, Any]


def merge(base: Any, overlay: Any) -> Any:
    """RFC 7386 merge: dicts merge key by key, None removes, anything else replaces."""
    if not isinstance(overlay, dict):
        return json_copy(overlay)
    base = base if isinstance(base, dict) else {}
    # Each value is copied once, where it lands (copying `base` whole at every level would copy
    # the deepest parts once per level above them).
    out = {k: json_copy(v) for k, v in base.items() if k not in overlay}
    for k, v in overlay.items():
        if v is not None:
            out[k] = merge(base.get(k), v)
    return {k: out[k] for k in [*base, *overlay] if k in out}


def replacing(old: Any, new: Any) -> Any:
    """A merge overlay that turns `old` into exactly `new`: keys `new` lacks become None (removed).

    Merge patches only add and change; for a sub-object the caller owns whole, this states
    the removals too. `new` None removes the whole value.
    """
    if not isinstance(new, dict) or not isinstance(old, dict):
        return json_copy(new)
    out: dict[str, Any] = {k: replacing(old.get(k), v) for k, v in new.items()}
    for k in old:
        if k not in new:
            out[k] = None
    return out


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nones(v) for v in value]
    return value


def spec_part(desired: Obj) -> Obj:
    """The part of `desired` written through the main resource: no status, no server-owned metadata."""
    out = {k: v for k, v in desired.items() if k not in IDENTITY_FIELDS and k != "status"}
    if "metadata" in out:
        out["metadata"] = {k: v for k, v in (out["metadata"] or {}).items() if k not in SERVER_METADATA}
    return out


def main_patch(live: Obj, desired: Obj) -> list[Op]:
    """JSON patch for everything but status."""
    current = {k: v for k, v in live.items() if k != "status"}
    target = merge(current, spec_part(desired))
    if target == current:
        return []  # the common case, and far cheaper than a diff that finds nothing
    ops: list[Op] = jsonpatch.make_patch(current, target).patch
    return ops


def status_patch(live: Obj, desired_status: Any) -> list[Op]:
    """JSON patch (paths under /status) that makes live.status match `desired_status` merged over it."""
    if desired_status is None:
        return []
    current = {"status": live["status"]} if "status" in live else {}
    target = merge(current, {"status": desired_status})
    if target == current:
        return []
    ops: list[Op] = jsonpatch.make_patch(current, target).patch
    return ops


def creation_body(desired: Obj, status_subresource: bool) -> Obj:
    """What to POST for a new object: status left out when the server would ignore it anyway."""
    body: Obj = _without_nones(desired)
    if status_subresource:
        body.pop("status", None)
    meta = body.get("metadata") or {}
    for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        meta.pop(k, None)
    return body
