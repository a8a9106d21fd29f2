"""Which coordination store and peer reader serve a DRPolicy: one pair per (profile, peer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.s3peer import (
    AppKey,
    ClientSettings,
    Coordinator,
    KeySchema,
    ObjectStore,
    PeerReader,
    S3Profile,
    client_for_profile,
    credentials_from_secret,
)
from reconciler.s3peer.envelope import is_label
from reconciler.s3peer.quorum import QuorumDRState


class PeeringError(Exception):
    """The policy's coordination profile cannot be used; the message says why."""


@dataclass
class Peering:
    """This cluster's writer and the peer's reader on one coordination bucket."""

    profile: str
    peer: str
    coordinator: Coordinator
    reader: PeerReader


@dataclass(frozen=True)
class PeeringSettings:
    key_prefix: str = ""
    hmac_key: bytes | None = None
    poll_interval: float = 30.0
    stale_after: float = 180.0
    # The local monotonic clock peer staleness is judged on (a simulated one in tests).
    monotonic: Callable[[], float] = field(default=time.monotonic)
    fetch_workers: int = 8
    #: Coordinator.digest_linger: 0 where no other report could join (one worker, the simulation).
    digest_linger: float = 0.0
    #: Called with (peer, apps) whenever a poll of that peer finds apps whose objects changed.
    on_peer_changes: Callable[[str, frozenset[AppKey]], None] | None = None


StoreFactory = Callable[[str], ObjectStore]


class PeeringRegistry:
    """Builds and remembers the Peering of each (S3 profile, peer cluster)."""

    def __init__(self, cluster: str, store_for_profile: StoreFactory, settings: PeeringSettings) -> None:
        self.cluster = cluster
        self._store_for_profile = store_for_profile
        self.settings = settings
        self._lock = threading.Lock()
        self._peerings: dict[tuple[str, str], Peering] = {}
        self._coordinators: dict[str, Coordinator] = {}
        self._quorums: dict[str, tuple[str, ...]] = {}

    def get(self, profile: str, peer: str, quorum: tuple[str, ...] | None = None) -> Peering:
        """The Peering on `profile`.

        `quorum` is the DRPolicy's s3CoordinationQuorum: dr-state is then replicated over those
        profiles' stores, and `profile` holds the other objects. None: a caller that reads only
        the other objects (storage classes) and takes whatever layout the profile has.
        """
        if not is_label(peer):
            # The DRPolicy schema bounds the length only; the name becomes an S3 key segment.
            raise PeeringError(f"peer cluster name {peer[:80]!r} is not a DNS-1123 label")
        with self._lock:
            keys = KeySchema(self.settings.key_prefix)
            coordinator = self._coordinators.get(profile)
            if quorum is not None:
                known = self._quorums.setdefault(profile, quorum)
                if known == () and quorum:
                    # The pair moves from one store to a quorum (docs/protocol.md, moving to three stores).
                    known = self._quorums[profile] = quorum
                if known != quorum:
                    # One cluster writes one digest and heartbeat per store: two layouts cannot share it.
                    raise PeeringError(f"S3 profile {profile!r} is the coordination profile of DRPolicies with "
                                       f"different s3CoordinationQuorum ({list(known) or 'none'} and "
                                       f"{list(quorum) or 'none'}): give every DRPolicy on it the same list")
                if coordinator is not None and quorum and coordinator.quorum is None:
                    coordinator.quorum = self._register(profile, coordinator.store, quorum, keys)
                    others = [s for s in coordinator.quorum.stores if s is not coordinator.store]
                    for p in self._peerings.values():
                        if p.coordinator is coordinator:
                            p.reader.health_stores = others  # heartbeats now come from every store
            found = self._peerings.get((profile, peer))
            if found is not None:
                return found
            store = coordinator.store if coordinator else self._store_for_profile(profile)
            if coordinator is None:
                register = self._register(profile, store, quorum, keys) if quorum else None
                coordinator = Coordinator(store, self.cluster, keys=keys, hmac_key=self.settings.hmac_key,
                                          quorum=register, digest_linger=self.settings.digest_linger)
                self._coordinators[profile] = coordinator
            register = coordinator.quorum
            others = [s for s in register.stores if s is not store] if register is not None else []
            reader = PeerReader(store, peer, keys=keys, hmac_key=self.settings.hmac_key,
                                stale_after=self.settings.stale_after, poll_interval=self.settings.poll_interval,
                                monotonic=self.settings.monotonic, fetch_workers=self.settings.fetch_workers,
                                health_stores=others, on_changed=self._listener(peer))
            peering = Peering(profile, peer, coordinator, reader)
            self._peerings[(profile, peer)] = peering
            return peering

    def _listener(self, peer: str) -> Callable[[frozenset[AppKey]], None] | None:
        tell = self.settings.on_peer_changes
        if tell is None:
            return None
        return lambda apps: tell(peer, apps)

    def _register(self, profile: str, store: ObjectStore, quorum: tuple[str, ...], keys: KeySchema) -> QuorumDRState:
        stores = [store if p == profile else self._store_for_profile(p) for p in quorum]
        return QuorumDRState(stores, self.cluster, keys=keys, hmac_key=self.settings.hmac_key, names=quorum)

    def all(self) -> list[Peering]:
        with self._lock:
            return list(self._peerings.values())

    def coordinators(self) -> dict[str, Coordinator]:
        """This cluster's writer per coordination store, by s3 profile name."""
        with self._lock:
            return dict(self._coordinators)


def profile_store_factory(
    profiles: Mapping[str, S3Profile],
    read_secret: Callable[[str, str], Mapping[str, Any]],
    client_settings: ClientSettings | None = None,
) -> StoreFactory:
    """Stores for RamenConfig profiles, with credentials read from each profile's Secret."""

    def make(name: str) -> ObjectStore:
        profile = profiles.get(name)
        if profile is None:
            raise PeeringError(f"S3 profile {name!r} is not in the operator configuration "
                               f"(known: {', '.join(sorted(profiles)) or 'none'})")
        try:
            secret = read_secret(profile.secret_ref.namespace, profile.secret_ref.name)
        except Exception as e:
            raise PeeringError(f"cannot read Secret {profile.secret_ref.namespace}/{profile.secret_ref.name} of "
                               f"S3 profile {name!r}: {e}") from e
        creds = credentials_from_secret(secret)
        return ObjectStore(client_for_profile(profile, creds, client_settings), profile.bucket)

    return make
