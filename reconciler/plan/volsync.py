"""What VolSync needs that Ramen's hub used to supply: the PSK Secret and the Secondary's rdSpec. Pure.

- **The PSK Secret** `<vrg>-vs-secret` (key `psk.txt`) in the app namespace, the same on both
  clusters: Ramen's VRG controller hands it to VolSync's rsync-TLS movers on both ends
  (vshandler.go). Ramen's hub generates `volsyncramen:<hex of 64 random bytes>` and propagates
  it; without a hub, each cluster derives the same bytes from a seed Secret configured on both
  (HMAC-SHA256, expanded to 64 bytes as HKDF-Expand does), so the key never travels, through S3
  or anywhere else.
- **The rdSpec**: the Secondary's VRG lists the Primary's VolSync PVCs in `spec.volSync.rdSpec`
  (one ReplicationDestination each). It comes from the Primary's cluster-status
  (`reconciler/s3peer/pvcs.py`). A Primary keeps the rdSpec it was promoted with until its VRG is
  ready (Ramen restores the PVCs from the ReplicationDestinations it names), then drops it, as
  the hub does once an action completes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from reconciler.plan.inputs import PRIMARY, SECONDARY, PlanInput, dig
from reconciler.s3peer import pvcs
from reconciler.s3peer.models import Role

PSK_KEY = "psk.txt"
#: Ramen's hub writes "volsyncramen:" and 64 random bytes in hex (secretgen.go); we write the same shape.
PSK_PREFIX = "volsyncramen:"
PSK_BYTES = 64
#: A seed shorter than an HMAC-SHA256 key's block of entropy is refused rather than stretched.
MIN_SEED_BYTES = 32
_INFO = b"ramen-p2p volsync psk v1"


def secret_name(vrg_name: str) -> str:
    """The name Ramen's VRG controller looks up (GetVolSyncPSKSecretNameFromVRGName)."""
    return f"{vrg_name}-vs-secret"


def derive_psk(seed: bytes, namespace: str, vrg_name: str) -> str:
    """The PSK for one app: HKDF-Expand(seed, info=app) to 64 bytes, in Ramen's text format.

    The app's namespace and name are in `info`, so one app's key says nothing about another's.
    """
    if len(seed) < MIN_SEED_BYTES:
        raise ValueError(f"the VolSync seed must be at least {MIN_SEED_BYTES} bytes")
    info = _INFO + b"\0" + namespace.encode() + b"\0" + vrg_name.encode()
    out, block, i = b"", b"", 1
    while len(out) < PSK_BYTES:
        block = hmac.new(seed, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return PSK_PREFIX + out[:PSK_BYTES].hex()


def in_use(inp: PlanInput) -> bool:
    """The app replicates (some of) its PVCs with VolSync: asked for in the spec, or seen on either side."""
    vrg_spec: Mapping[str, Any] = dig(inp.drcontrol, "spec", "vrgSpec") or {}
    if vrg_spec.get("replicationType", "async") != "async":
        return False
    volsync = vrg_spec.get("volSync")
    if isinstance(volsync, Mapping) and volsync.get("disabled", False):
        return False
    if isinstance(volsync, Mapping):
        return True
    peer = inp.coordination.peer_status
    return bool(pvcs.from_vrg_status(dig(inp.vrg.live or {}, "status", "protectedPVCs"))) or bool(
        peer is not None and peer.volsync_pvcs)


def published_pvcs(inp: PlanInput) -> list[dict[str, Any]]:
    """The local VRG's VolSync PVCs, for this cluster's cluster-status while it is Primary."""
    return pvcs.from_vrg_status(dig(inp.vrg.live or {}, "status", "protectedPVCs"))


def rd_spec(inp: PlanInput, state: str) -> tuple[bool, list[dict[str, Any]] | None]:
    """(owned, rdSpec) for the desired VRG; owned False leaves the live rdSpec as it is.

    A Secondary takes the list the current Primary publishes for the current generation; with
    none to go by (no report yet, an older generation, a peer that publishes no list) it keeps
    what it has: Ramen deletes a Secondary's ReplicationDestinations when the rdSpec goes away.
    """
    if not in_use(inp):
        return False, None
    ds, peer = inp.coordination.dr_state, inp.coordination.peer_status
    if state == SECONDARY:
        if ds is None or ds.primary == inp.cluster or peer is None or peer.role != Role.PRIMARY \
                or peer.observed_generation != ds.generation or peer.volsync_pvcs is None:
            return False, None
        return True, pvcs.rd_spec(peer.volsync_pvcs) or None
    if state == PRIMARY and inp.vrg.ready_as_primary:
        return True, None  # restored: the ReplicationDestinations it named are no longer needed
    return False, None


def with_rd_spec(volsync: Any, inp: PlanInput, state: str) -> Any:
    """The VRG's `spec.volSync` we want: the DRControl's block plus the rdSpec decided above."""
    owned, rds = rd_spec(inp, state)
    live = dig(inp.vrg.live or {}, "spec", "volSync", "rdSpec")
    if not owned:
        rds = live if isinstance(live, list) and live else None
    if rds is None:
        if volsync is None:
            return None
        return {k: v for k, v in dict(volsync).items() if k != "rdSpec"}
    return {**{k: v for k, v in dict(volsync or {}).items() if k != "rdSpec"}, "rdSpec": rds}
