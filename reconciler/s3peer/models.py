"""Typed bodies of the coordination objects, with strict parsing (bad input -> CorruptObject)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from reconciler.s3peer import pvcs as _pvcs
from reconciler.s3peer.envelope import (
    content_hash,
    opt_label,
    opt_str,
    req_int,
    req_label,
    req_str,
)
from reconciler.s3peer.errors import CorruptObject
from reconciler.s3peer.keys import AppKey

E = TypeVar("E", bound=StrEnum)

#: More storage classes than any cluster has; the list is copied into DRCluster status.
MAX_STORAGE_CLASSES = 1000
_HASH_MAX = 64


class Action(StrEnum):
    INITIAL = "Initial"
    FAILOVER = "Failover"
    RELOCATE = "Relocate"


class Role(StrEnum):
    PRIMARY = "primary"
    PRIMARY_READY = "primary-ready"
    SECONDARY = "secondary"
    SECONDARY_READY = "secondary-ready"
    UNKNOWN = "unknown"


def _enum(cls: type[E], body: Mapping[str, Any], name: str, key: str | None) -> E:
    v = body.get(name)
    try:
        if not isinstance(v, str):
            raise ValueError(v)
        return cls(v)
    except ValueError:
        raise CorruptObject(f"body field {name} has unknown value {v!r}", key=key) from None


def _obj(body: Mapping[str, Any], name: str, key: str | None) -> dict[str, Any]:
    v = body.get(name, {})
    if not isinstance(v, dict):
        raise CorruptObject(f"body field {name} must be an object", key=key)
    return v


@dataclass(frozen=True)
class DRState:
    """`{ns}/{vrg}/dr-state`: the decision of who is Primary."""

    primary: str
    generation: int
    action: Action
    previous_primary: str | None
    intent_nonce: str | None
    changed_at: str

    def to_body(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "generation": self.generation,
            "action": str(self.action),
            "previousPrimary": self.previous_primary,
            "intentNonce": self.intent_nonce,
            "changedAt": self.changed_at,
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> DRState:
        st = cls(
            primary=req_label(body, "primary", key),
            generation=req_int(body, "generation", key, minimum=1),
            action=_enum(Action, body, "action", key),
            previous_primary=opt_label(body, "previousPrimary", key),
            intent_nonce=opt_str(body, "intentNonce", key),
            changed_at=req_str(body, "changedAt", key),
        )
        # Generation 1 is the initial claim and nothing else.
        if (st.generation == 1) != (st.action == Action.INITIAL):
            raise CorruptObject(f"action {st.action} at generation {st.generation}", key=key)
        return st


@dataclass(frozen=True)
class DRIntent:
    """`{ns}/{vrg}/dr-intent/{cluster}`: a request, live only while baseGeneration is current."""

    action: Action
    target: str
    base_generation: int
    spec_generation: int
    requested_at: str

    def to_body(self) -> dict[str, Any]:
        return {
            "action": str(self.action),
            "target": self.target,
            "baseGeneration": self.base_generation,
            "specGeneration": self.spec_generation,
            "requestedAt": self.requested_at,
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> DRIntent:
        action = _enum(Action, body, "action", key)
        if action == Action.INITIAL:
            raise CorruptObject("an intent cannot ask for Initial", key=key)
        return cls(
            action=action,
            target=req_label(body, "target", key),
            base_generation=req_int(body, "baseGeneration", key),
            spec_generation=req_int(body, "specGeneration", key),
            requested_at=req_str(body, "requestedAt", key),
        )

    def is_live(self, dr_state_generation: int) -> bool:
        """Only an intent based on the current generation may be acted on."""
        return self.base_generation == dr_state_generation


@dataclass(frozen=True)
class ClusterStatus:
    """`{ns}/{vrg}/cluster-status/{cluster}`: a cluster's report for one app.

    `details` is free-form (VRG condition summary, replication health); it is part
    of the content hash, so anything volatile (timestamps) should stay out of it.
    """

    role: Role
    observed_generation: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {"role": str(self.role), "observedGeneration": self.observed_generation, "details": self.details}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> ClusterStatus:
        details = _obj(body, "details", key)
        if _pvcs.DETAILS_KEY in details:
            # The Secondary's VRG spec is built from it: checked here, so a bad list is a corrupt object.
            _pvcs.parse(details[_pvcs.DETAILS_KEY], key)
        return cls(
            role=_enum(Role, body, "role", key),
            observed_generation=req_int(body, "observedGeneration", key),
            details=details,
        )

    @property
    def volsync_pvcs(self) -> list[dict[str, Any]] | None:
        """The VolSync PVCs a Primary published (checked when parsed); None when it published none."""
        raw = self.details.get(_pvcs.DETAILS_KEY)
        return list(raw) if isinstance(raw, list) else None

    def content_hash(self) -> str:
        return content_hash(self.to_body())


@dataclass(frozen=True)
class Health:
    """`cluster-info/{cluster}/health`: the heartbeat."""

    sequence: int
    operator_version: str
    ready: bool

    def to_body(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "operatorVersion": self.operator_version, "ready": self.ready}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> Health:
        ready = body.get("ready")
        if not isinstance(ready, bool):
            raise CorruptObject("body field ready must be a boolean", key=key)
        return cls(
            sequence=req_int(body, "sequence", key, minimum=1),
            operator_version=req_str(body, "operatorVersion", key),
            ready=ready,
        )


@dataclass(frozen=True)
class StorageClasses:
    """`cluster-info/{cluster}/storage-classes`: discovered classes, each a free-form object with a name."""

    classes: tuple[dict[str, Any], ...]

    def to_body(self) -> dict[str, Any]:
        return {"classes": sorted(self.classes, key=lambda c: str(c.get("name", "")))}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> StorageClasses:
        raw = body.get("classes")
        if not isinstance(raw, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in raw):
            raise CorruptObject("body field classes must be a list of objects with a name", key=key)
        if len(raw) > MAX_STORAGE_CLASSES:
            raise CorruptObject(f"{len(raw)} storage classes, over {MAX_STORAGE_CLASSES}", key=key)
        return cls(classes=tuple(raw))

    def content_hash(self) -> str:
        return content_hash(self.to_body())


@dataclass(frozen=True)
class DigestEntry:
    #: None while the cluster has written no cluster-status for the app (only an intent).
    status_hash: str | None
    role: Role
    observed_generation: int
    #: Our addition: hash of this cluster's dr-intent for the app, None when it has none.
    intent_hash: str | None = None

    def to_body(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "statusHash": self.status_hash,
            "role": str(self.role),
            "observedGeneration": self.observed_generation,
        }
        if self.intent_hash is not None:
            d["intentHash"] = self.intent_hash
        return d

    @classmethod
    def from_body(cls, body: Any, key: str | None = None) -> DigestEntry:
        if not isinstance(body, dict):
            raise CorruptObject("digest entry must be an object", key=key)
        ih = body.get("intentHash")
        if ih is not None and (not isinstance(ih, str) or len(ih) > _HASH_MAX):
            raise CorruptObject("digest intentHash must be a short string", key=key)
        return cls(
            status_hash=opt_str(body, "statusHash", key, max_len=_HASH_MAX),
            role=_enum(Role, body, "role", key),
            observed_generation=req_int(body, "observedGeneration", key),
            intent_hash=ih,
        )


@dataclass(frozen=True)
class Digest:
    """The single-object digest of earlier versions (`cluster-info/{cluster}/digest`), still read so
    that a cluster upgraded first understands a peer not yet upgraded (digestpages.py)."""

    apps: Mapping[AppKey, DigestEntry]
    storage_classes_hash: str | None = None

    def to_body(self) -> dict[str, Any]:
        return {
            "apps": {str(a): e.to_body() for a, e in sorted(self.apps.items(), key=lambda kv: str(kv[0]))},
            "storageClassesHash": self.storage_classes_hash,
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> Digest:
        raw = body.get("apps")
        if not isinstance(raw, dict):
            raise CorruptObject("digest apps must be an object", key=key)
        apps: dict[AppKey, DigestEntry] = {}
        for k, v in raw.items():
            try:
                app = AppKey.parse(k)
            except ValueError:
                raise CorruptObject(f"digest has an invalid app key {k!r}", key=key) from None
            apps[app] = DigestEntry.from_body(v, key)
        sch = body.get("storageClassesHash")
        if sch is not None and (not isinstance(sch, str) or len(sch) > _HASH_MAX):
            raise CorruptObject("digest storageClassesHash must be a string", key=key)
        return cls(apps=apps, storage_classes_hash=sch)
