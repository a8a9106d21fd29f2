"""dr-state over three S3 servers: a site lost together with its store still fails over.

Three real S3 servers (versitygw) of a private environment: the first holds east's acceptor and
the other coordination objects (digest, cluster-status, intents), the second and third the
other acceptors (west's site and a witness). Both operators and both VRG simulators run as
processes against the shared local clusters.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e import harness
from e2e.localenv import LocalEnv
from e2e.localenv.clients import Cluster, s3_client
from tests.e2e.conftest import DRPair, running_pair


@contextlib.contextmanager
def three_store_pair(clusters: dict[str, Cluster], namespace: str, env: LocalEnv, tmp_path: Path,
                     request: pytest.FixtureRequest, policy_quorum: bool) -> Iterator[DRPair]:
    """Both clusters configured with the three S3 servers of `env`; the DRPolicy names them all, or
    (`policy_quorum` False) still one store. The next test's plain DRPolicy replaces this one."""
    for c in clusters.values():
        harness.configure_cluster(c, env.s3, quorum=env.s3_extra, policy_quorum=policy_quorum)
    # Each site's VRG uploads its metadata to its own site's store (east: the first, west: the second).
    site_b = tmp_path / "s3-site-b.json"
    site_b.write_text(json.dumps(env.s3_extra[0]))
    with running_pair(clusters, namespace, env, tmp_path, request,
                      {"east": env.s3_config_file(), "west": site_b}) as pair:
        yield pair


@pytest.fixture
def quorum_pair(clusters: dict[str, Cluster], namespace: str, private_env: Callable[..., LocalEnv],
                tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DRPair]:
    with three_store_pair(clusters, namespace, private_env([], s3_servers=3), tmp_path, request,
                          policy_quorum=True) as pair:
        yield pair


@pytest.fixture
def moving_pair(clusters: dict[str, Cluster], namespace: str, private_env: Callable[..., LocalEnv],
                tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DRPair]:
    """Three S3 servers configured on both clusters, the DRPolicy still naming one store."""
    with three_store_pair(clusters, namespace, private_env([], s3_servers=3), tmp_path, request,
                          policy_quorum=False) as pair:
        yield pair


def acceptors(env: LocalEnv, namespace: str) -> list[bool]:
    key = f"{namespace}/app/dr-state-acceptor"
    out = []
    for server in [env.s3, *env.s3_extra]:
        objs = s3_client(server).list_objects_v2(Bucket=server["bucket"], Prefix=key).get("Contents", [])
        out.append(any(o["Key"] == key for o in objs))
    return out


def test_a_site_lost_with_its_store_fails_over_through_the_two_stores_left(quorum_pair: DRPair) -> None:
    pair = quorum_pair
    pair.protect_on_east()
    assert acceptors(pair.env, pair.namespace) == [True, True, True]
    pol = pair.clusters["west"].custom.get_cluster_custom_object(harness.GROUP, harness.VERSION, "drpolicies",
                                                                 harness.POLICY)
    pair.wait(lambda: harness.condition(pair.clusters["west"].custom.get_cluster_custom_object(
        harness.GROUP, harness.VERSION, "drpolicies", harness.POLICY), "Validated").get("status") == "True",
        "the DRPolicy validates all three stores")
    assert len(pol["spec"]["s3CoordinationQuorum"]) == 3

    # East's site goes: its operator, its VRG simulator, and the S3 server holding its acceptor
    # and the other coordination objects.
    pair.operators["east"].kill()
    pair.simulators["east"].kill()
    pair.env.stop("s3")
    harness.set_action(pair.clusters["west"], pair.namespace, "Failover", "west")
    pair.wait(lambda: pair.primary_ready("west", 2), "west Primary at generation 2 through two stores of three",
              timeout=90)
    peer = harness.condition(pair.drc("west"), "PeerConnected")
    assert peer.get("reason") == "CoordinationStoreUnreachable", peer

    # East's site returns: it reads generation 2 through the quorum and demotes.
    pair.env.start("s3")
    pair.simulators["east"].start()
    pair.operators["east"].start()
    pair.wait(lambda: pair.secondary_settled("east", 2), "east demoted at generation 2 after returning", timeout=90)
    assert not harness.ready_for_application(pair.drc("east"))
    assert pair.primary_ready("west", 2)


def test_a_pair_moves_from_one_store_to_three_one_cluster_at_a_time(moving_pair: DRPair) -> None:
    pair = moving_pair
    pair.protect_on_east()
    assert acceptors(pair.env, pair.namespace) == [False, False, False]

    def add_quorum(cluster: str) -> None:
        pair.clusters[cluster].custom.patch_cluster_custom_object(
            harness.GROUP, harness.VERSION, "drpolicies", harness.POLICY,
            {"spec": {"s3CoordinationQuorum": harness.quorum_profiles()}})

    add_quorum("east")
    pair.wait(lambda: acceptors(pair.env, pair.namespace) == [True, True, True],
              "east moved dr-state into the three stores")
    pair.wait(lambda: s3_reachable(pair, "west").get("reason") == "CoordinationMoved",
              "west, whose DRPolicy still names one store, freezes")
    assert "add the same spec.s3CoordinationQuorum" in s3_reachable(pair, "west")["message"]
    assert pair.primary_ready("east", 1)
    assert (pair.vrg("west") or {})["spec"]["replicationState"] == "secondary"

    add_quorum("west")
    wait_all_stores(pair, "reads dr-state from all three stores")
    assert pair.primary_ready("east", 1) and pair.secondary_settled("west", 1)

    # The quorum decides now: east's site is lost with the store that held dr-state alone before.
    pair.operators["east"].kill()
    pair.simulators["east"].kill()
    pair.env.stop("s3")
    harness.set_action(pair.clusters["west"], pair.namespace, "Failover", "west")
    pair.wait(lambda: pair.primary_ready("west", 2), "west Primary at generation 2 through the two stores left",
              timeout=90)


def store_names(env: LocalEnv) -> list[str]:
    return ["s3", *(x["component"] for x in env.s3_extra)]


LOST_IDS = ["store-of-the-other-objects", "second", "third"]


def profile_names() -> list[str]:
    return [harness.PROFILE, *harness.QUORUM_PROFILES]


def s3_reachable(pair: DRPair, cluster: str) -> dict[str, str]:
    return harness.condition(pair.drc(cluster), "S3Reachable")


def wait_all_stores(pair: DRPair, what: str) -> None:
    for c in ("east", "west"):
        pair.wait(lambda: s3_reachable(pair, c).get("message") == "all 3 coordination stores answer",  # noqa: B023
                  f"{c} {what}")


@pytest.mark.parametrize("lost", [0, 1, 2], ids=LOST_IDS)
def test_steady_state_with_one_store_lost_keeps_roles_and_names_the_store(quorum_pair: DRPair, lost: int) -> None:
    pair = quorum_pair
    pair.protect_on_east()
    wait_all_stores(pair, "reads all three stores")
    pair.env.stop(store_names(pair.env)[lost])
    profile = profile_names()[lost]
    for c in ("east", "west"):
        pair.wait(lambda: s3_reachable(pair, c).get("reason") == "MajorityReachable"  # noqa: B023
                  and f"(unreachable: {profile} (" in s3_reachable(pair, c).get("message", ""),  # noqa: B023
                  f"{c} names {profile} as unreachable")
        assert "2 of 3 coordination stores answer" in s3_reachable(pair, c)["message"]
    if lost == 0:
        # The peer's objects are read on the poll: the next one finds their store gone.
        pair.wait(lambda: harness.condition(pair.drc("west"), "PeerConnected").get("reason")
                  == "CoordinationStoreUnreachable", "west says the store of the other objects is gone")
    # Several poll cycles later nothing moved: the same Primary, ready, the same generation.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert pair.primary_ready("east", 1) and pair.secondary_settled("west", 1)
        assert (pair.vrg("east") or {})["spec"]["replicationState"] == "primary"
        time.sleep(0.5)
    pair.env.start(store_names(pair.env)[lost])
    wait_all_stores(pair, "reads all three stores again")
    assert pair.primary_ready("east", 1)


@pytest.mark.parametrize("lost", [1, 2], ids=LOST_IDS[1:])
def test_a_failover_with_one_store_lost_goes_through_the_two_left(quorum_pair: DRPair, lost: int) -> None:
    # (The store of the other objects lost with east's site: the first test of this module.)
    pair = quorum_pair
    pair.protect_on_east()
    pair.operators["east"].kill()
    pair.simulators["east"].kill()
    name = store_names(pair.env)[lost]
    pair.env.stop(name)
    harness.set_action(pair.clusters["west"], pair.namespace, "Failover", "west")
    pair.wait(lambda: pair.primary_ready("west", 2), f"west Primary at generation 2 without {name}", timeout=90)
    assert s3_reachable(pair, "west").get("reason") == "MajorityReachable"
    pair.simulators["east"].start()
    pair.operators["east"].start()
    pair.wait(lambda: pair.secondary_settled("east", 2), "east demoted at generation 2 after returning", timeout=90)
    pair.env.start(name)
    # The store that was down took no part in generation 2: the next read brings it up to date.
    pair.wait(lambda: s3_reachable(pair, "west").get("message") == "all 3 coordination stores answer",
              "west reads all three stores again")
    assert pair.primary_ready("west", 2) and not harness.ready_for_application(pair.drc("east"))


@pytest.mark.parametrize("lost", [0, 1, 2], ids=LOST_IDS)
def test_a_relocate_with_one_store_lost_completes(quorum_pair: DRPair, lost: int) -> None:
    pair = quorum_pair
    pair.protect_on_east()
    name = store_names(pair.env)[lost]
    pair.env.stop(name)
    for c in pair.clusters.values():
        harness.set_action(c, pair.namespace, "Relocate", "west")
    if lost == 0:
        # The release travels through the store of the other objects: the relocate waits for it.
        pair.wait(lambda: harness.condition(pair.drc("west"), "PeerConnected").get("reason")
                  == "CoordinationStoreUnreachable", "west says the store of the other objects is gone")
        assert (pair.drc("west").get("status") or {}).get("generation") == 1
        pair.env.start(name)
    pair.wait(lambda: pair.primary_ready("west", 2) and pair.secondary_settled("east", 2),
              f"relocated to west at generation 2 with {name} {'back' if lost == 0 else 'down'}", timeout=90)


def test_a_cluster_cut_off_from_two_stores_freezes_then_fails_over_when_one_returns(quorum_pair: DRPair) -> None:
    pair = quorum_pair
    pair.protect_on_east()
    pair.operators["east"].kill()
    for name in store_names(pair.env)[1:]:
        pair.env.stop(name)
    harness.set_action(pair.clusters["west"], pair.namespace, "Failover", "west")
    pair.wait(lambda: harness.condition(pair.drc("west"), "S3Reachable").get("status") == "False",
              "west reports that no majority of stores answers")
    assert "majority" in harness.condition(pair.drc("west"), "S3Reachable").get("message", "")
    assert (pair.vrg("west") or {})["spec"]["replicationState"] == "secondary"
    pair.env.start(store_names(pair.env)[2])
    pair.wait(lambda: pair.primary_ready("west", 2), "west Primary at generation 2 once two stores answer",
              timeout=90)


def test_duelling_failovers_from_both_clusters_have_one_winner(quorum_pair: DRPair) -> None:
    pair = quorum_pair
    pair.protect_on_east()
    harness.set_action(pair.clusters["east"], pair.namespace, "Failover", "east")
    harness.set_action(pair.clusters["west"], pair.namespace, "Failover", "west")

    def converged() -> bool:
        d = {c: pair.drc(c).get("status") or {} for c in ("east", "west")}
        prim = {s.get("currentPrimary") for s in d.values()}
        gens = {s.get("generation") for s in d.values()}
        if len(prim) != 1 or len(gens) != 1:
            return False
        winner, gen = prim.pop(), gens.pop()
        loser = "west" if winner == "east" else "east"
        return bool(pair.primary_ready(str(winner), int(gen or 0)) and pair.secondary_settled(loser, int(gen or 0)))

    pair.wait(converged, "both clusters agree on one Primary", timeout=90)
    ready = [c for c in ("east", "west") if harness.ready_for_application(pair.drc(c))]
    assert len(ready) == 1
