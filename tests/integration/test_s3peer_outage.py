"""A private S3 server stopped and restarted mid-sequence: Unreachable, roles frozen, then recovery."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.localenv import LocalEnv
from reconciler.s3peer import (
    Action,
    AppKey,
    ClientSettings,
    ClusterStatus,
    Coordinator,
    ObjectStore,
    PeerReader,
    Role,
    Unreachable,
)

pytestmark = pytest.mark.realenv
APP = AppKey("shop", "web")
FAST = ClientSettings(connect_timeout=1.0, read_timeout=2.0, max_attempts=2)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_server_stop_gives_unreachable_then_recovers(private_env: Callable[[list[str]], LocalEnv]) -> None:
    env = private_env([])
    east = Coordinator(ObjectStore.from_settings(env.s3, FAST), "east")
    west = Coordinator(ObjectStore.from_settings(env.s3, FAST), "west")
    clock = Clock()
    reader = PeerReader(ObjectStore.from_settings(env.s3, FAST), "east", stale_after=180, error_ttl=0,
                        monotonic=clock)

    g1 = east.claim_initial(APP).current
    assert g1 is not None
    east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1))
    east.heartbeat(operator_version="v")
    assert reader.poll().status(APP) is not None

    env.stop("s3")
    with pytest.raises(Unreachable) as info:
        west.read_dr_state(APP)
    assert info.value.reason == "S3Unreachable"
    with pytest.raises(Unreachable):
        west.transition(APP, g1, Action.FAILOVER)
    with pytest.raises(Unreachable):
        east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1, {"changed": True}))
    with pytest.raises(Unreachable):
        east.heartbeat(operator_version="v")
    # A long outage on our side is not the peer going stale: failed polls judge nothing.
    clock.t += 1000
    with pytest.raises(Unreachable):
        reader.snapshot()
    with pytest.raises(Unreachable):
        reader.poll()

    env.start("s3")
    # Nothing moved while S3 was away: generation 1 still names east.
    current = west.read_dr_state(APP)
    assert current is not None and (current.value.primary, current.value.generation) == ("east", 1)
    # The status write that failed is retried by the next reconcile and reaches the peer.
    assert east.write_cluster_status(APP, ClusterStatus(Role.PRIMARY, 1, {"changed": True}))
    east.heartbeat(operator_version="v")
    snap = reader.poll()
    st = snap.status(APP)
    assert st is not None and st.value.details == {"changed": True}
    assert not snap.health.stale and snap.health.sequence == 2
    fo = west.transition(APP, current, Action.FAILOVER)
    assert fo.won and fo.current is not None and fo.current.value.generation == 2


def test_time_blind_during_an_outage_is_not_counted_as_peer_silence(
        private_env: Callable[[list[str]], LocalEnv]) -> None:
    env = private_env([])
    store = ObjectStore.from_settings(env.s3, FAST)
    clock = Clock()
    writer = Coordinator(store, "east")
    reader = PeerReader(store, "east", stale_after=180, poll_interval=30, monotonic=clock)
    writer.heartbeat(operator_version="v")
    assert not reader.poll().health.stale
    env.stop("s3")
    clock.t += 600  # ten minutes of outage: nobody could write or read heartbeats
    with pytest.raises(Unreachable):
        reader.poll()
    env.start("s3")
    back = reader.poll().health
    assert not back.stale, "our own outage was read as the peer's silence"
    clock.t += 181
    assert reader.poll().health.stale, "a peer silent for staleAfter in sight is stale"
