"""Scenarios 2 to 4: relocate both ways, failover with the old Primary's operator dead, racing requests."""

from __future__ import annotations

from typing import Any

import pytest

from e2e import harness
from tests.e2e.conftest import DRPair


def _assert_demoted_before_promoted(events: list[dict[str, Any]], old: str, new: str, namespace: str) -> None:
    """I2: the old Primary's VRG reported Secondary before the new one was asked to be primary."""
    mine = [e for e in events if e["namespace"] == namespace]
    asked = next(e for e in mine if e["cluster"] == new and e["event"] == "spec" and e["replicationState"] == "primary")
    demoted = [e for e in mine if e["cluster"] == old and e["event"] == "status" and e["state"] == "Secondary"
               and e["t"] <= asked["t"]]
    assert demoted, f"{new} was asked to be primary at {asked['t']} before {old} reported Secondary"
    promoted_again = [e for e in mine if e["cluster"] == old and e["event"] == "spec"
                      and e["replicationState"] == "primary" and demoted[-1]["t"] < e["t"] <= asked["t"]]
    assert not promoted_again, f"{old} was promoted again before {new} took over"


@pytest.mark.parametrize("volsync", [False, True], ids=["volrep", "volsync"])
def test_relocate_east_to_west_and_back_takes_no_data_loss_path(drpair: DRPair, volsync: bool) -> None:
    drpair.protect_on_east(volsync)
    for c in ("east", "west"):  # GitOps sets the same action on both clusters
        harness.set_action(drpair.clusters[c], drpair.namespace, "Relocate", "west")
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2", timeout=90)
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east Secondary at generation 2")
    _assert_demoted_before_promoted(harness.timeline(drpair.logdir), "east", "west", drpair.namespace)
    west = drpair.drc("west")
    assert west["status"]["lastAction"]["result"] == "Succeeded"
    assert (drpair.vrg("west") or {})["spec"]["action"] == "Relocate"
    if volsync:
        east_spec_events = [e for e in harness.timeline(drpair.logdir)
                            if e["cluster"] == "east" and e["event"] == "spec"]
        assert any(e["prepareForFinalSync"] for e in east_spec_events), "final sync was not prepared"
        assert any(e["runFinalSync"] for e in east_spec_events), "final sync was not run"

    # And back, with the action set on one cluster only: the other learns it from the intent.
    harness.set_action(drpair.clusters["east"], drpair.namespace, "Relocate", "east")
    drpair.wait(lambda: drpair.primary_ready("east", 3), "east Primary again at generation 3", timeout=90)
    drpair.wait(lambda: drpair.secondary_settled("west", 3), "west Secondary at generation 3")


def test_failover_with_the_old_primary_dead_then_the_old_primary_returns(drpair: DRPair) -> None:
    drpair.protect_on_east()
    drpair.operators["east"].kill()
    harness.set_action(drpair.clusters["west"], drpair.namespace, "Failover", "west")
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west Primary at generation 2 without east", timeout=60)
    assert (drpair.vrg("west") or {})["spec"]["action"] == "Failover"
    # East's VRG is still primary: nobody demoted it while its operator was dead.
    assert (drpair.vrg("east") or {})["spec"]["replicationState"] == "primary"
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "PeerConnected").get("reason") == "PeerStale",
                "west reports east's heartbeat as stale")

    drpair.operators["east"].start()
    drpair.wait(lambda: drpair.secondary_settled("east", 2), "east demoted at generation 2 after returning")
    east = drpair.drc("east")
    assert east["status"]["currentPrimary"] == "west"
    assert not harness.ready_for_application(east)
    # West stays the only cluster ready for the application.
    assert drpair.primary_ready("west", 2)


def test_both_clusters_claiming_at_once_have_exactly_one_winner(drpair: DRPair) -> None:
    drpair.protect(preferred="")  # no preferred cluster: both try the initial claim
    drpair.wait(lambda: all((drpair.drc(c).get("status") or {}).get("generation") == 1 for c in ("east", "west")),
                "both clusters see generation 1")
    primaries = {(drpair.drc(c)["status"]["currentPrimary"]) for c in ("east", "west")}
    assert len(primaries) == 1
    winner = primaries.pop()
    loser = "west" if winner == "east" else "east"
    drpair.wait(lambda: drpair.primary_ready(winner, 1), f"{winner} ready")
    drpair.wait(lambda: drpair.secondary_settled(loser, 1), f"{loser} settles as Secondary")


def test_both_clusters_asking_failover_to_themselves_converge_on_one_primary(drpair: DRPair) -> None:
    drpair.protect_on_east()
    harness.set_action(drpair.clusters["east"], drpair.namespace, "Failover", "east")
    harness.set_action(drpair.clusters["west"], drpair.namespace, "Failover", "west")

    def converged() -> bool:
        d = {c: drpair.drc(c) for c in ("east", "west")}
        gens = {c: (d[c].get("status") or {}).get("generation") for c in d}
        prim = {c: (d[c].get("status") or {}).get("currentPrimary") for c in d}
        ready = [c for c in d if harness.ready_for_application(d[c])]
        return gens["east"] == gens["west"] and prim["east"] == prim["west"] and ready == [prim["east"]]

    drpair.wait(converged, "one Primary and one ReadyForApplication on both clusters' view", timeout=60)
    ready = [c for c in ("east", "west") if harness.ready_for_application(drpair.drc(c))]
    assert len(ready) == 1
