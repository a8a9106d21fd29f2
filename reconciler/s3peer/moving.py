"""The marker left at the single-store dr-state key once an app's dr-state lives in a quorum.

A pair moves from one coordination store to a quorum (DRPolicy `s3CoordinationQuorum` added)
one cluster at a time. Whichever cluster first reads the app with a quorum configured turns
the single-store object into this marker, with If-Match on the version it read, and then
writes the same value into the empty register. From then on:

- a cluster still configured with one store cannot write dr-state there any more (its
  conditional writes compare against the version the marker replaced), and reading the
  marker freezes its roles with reason `CoordinationMoved` until its DRPolicy names the
  quorum too; an older operator reads an unknown kind and freezes as for a corrupt object;
- the marker carries the moved value until the register holds it, so a mover that crashes
  between the two writes leaves enough for the next reader to finish the move, and it is
  emptied afterwards, so a register that is later wiped cannot be filled from it again.

A pair configured with a quorum from the start writes the empty marker before its first
claim, which keeps a peer whose DRPolicy lacks the quorum from claiming on the single store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.s3peer.envelope import MAX_SHORT_STRING, req_str
from reconciler.s3peer.errors import CorruptObject
from reconciler.s3peer.models import DRState

MAX_STORES = 7


@dataclass(frozen=True)
class MovedMarker:
    """`stores`: the profiles dr-state moved to. `state`/`nonce`: the value being moved (None once the
    register holds it, or for a pair that started with a quorum)."""

    stores: tuple[str, ...]
    state: DRState | None = None
    nonce: str = ""

    def to_body(self) -> dict[str, Any]:
        return {"stores": list(self.stores), "state": self.state.to_body() if self.state else None,
                "nonce": self.nonce}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None) -> MovedMarker:
        stores = body.get("stores")
        if not isinstance(stores, list) or not 1 <= len(stores) <= MAX_STORES or \
                not all(isinstance(s, str) and 0 < len(s) <= MAX_SHORT_STRING for s in stores):
            raise CorruptObject(f"stores must list 1 to {MAX_STORES} profile names", key=key)
        raw = body.get("state")
        if raw is not None and not isinstance(raw, Mapping):
            raise CorruptObject("state must be an object or null", key=key)
        state = DRState.from_body(raw, key) if raw is not None else None
        nonce = req_str(body, "nonce", key) if state is not None else ""
        return cls(tuple(stores), state, nonce)

    def moved_message(self) -> str:
        return (f"dr-state of this app moved to a quorum of coordination stores ({', '.join(self.stores)}); this "
                "cluster's DRPolicy names one store: add the same spec.s3CoordinationQuorum as on the peer")
