"""Opt-in behaviours end to end: automatic failover, and signed coordination objects."""

from __future__ import annotations

import json
import secrets
import time

from e2e import harness
from tests.e2e.conftest import DRPair


def _restart_operators(drpair: DRPair) -> None:
    """Operators read their ConfigMap at start: restart them after reconfiguring."""
    for op in drpair.operators.values():
        op.stop()
        op.start()


def test_automatic_failover_after_the_peer_falls_silent(drpair: DRPair) -> None:
    for c in drpair.clusters.values():
        harness.configure_cluster(c, drpair.env.s3, auto_failover_after="8s")
    drpair.protect_on_east()
    drpair.operators["east"].kill()  # east's heartbeat stops
    drpair.wait(lambda: drpair.primary_ready("west", 2), "west fails over by itself once east is silent",
                timeout=90)
    west = drpair.drc("west")
    assert west["status"]["lastAction"]["action"] == "Failover"
    assert west["status"]["lastAction"]["targetCluster"] == "west"
    assert harness.condition(west, "PeerConnected")["reason"] == "PeerStale"


def test_without_automatic_failover_a_silent_peer_changes_nothing(drpair: DRPair) -> None:
    drpair.protect_on_east()
    drpair.operators["east"].kill()
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "PeerConnected").get("reason") == "PeerStale",
                "west notices east is silent")
    time.sleep(3.0)
    assert drpair.secondary_settled("west", 1), "west took over without being asked"


def test_signed_coordination_objects_and_a_forged_dr_state_is_refused(drpair: DRPair) -> None:
    key = secrets.token_bytes(32)
    for c in drpair.clusters.values():
        harness.configure_cluster(c, drpair.env.s3, hmac_key=key)
    _restart_operators(drpair)
    drpair.protect_on_east()
    bucket, dr_state = drpair.env.s3["bucket"], f"{drpair.namespace}/app/dr-state"
    envelope = json.loads(drpair.s3.get_object(Bucket=bucket, Key=dr_state)["Body"].read())
    assert envelope["signature"].startswith("hmac-sha256:")

    # Someone with bucket access but without the key names west Primary at a higher generation.
    forged = {**envelope, "body": {**envelope["body"], "primary": "west", "generation": 5, "action": "Failover"}}
    drpair.s3.put_object(Bucket=bucket, Key=dr_state, Body=json.dumps(forged).encode())
    harness.set_action(drpair.clusters["west"], drpair.namespace, "Failover", "west")  # makes west read it now
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "Stalled").get("reason") == "SignatureInvalid",
                "west refuses the forged dr-state")
    time.sleep(2.0)
    assert (drpair.vrg("west") or {})["spec"]["replicationState"] == "secondary", "promoted on a forged dr-state"
