"""The per-DRControl series the alerts and the dashboard read (reconciler/metrics.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prometheus_client import generate_latest

from reconciler.kube.client import RequestStats
from reconciler.metrics import Metrics, object_kind


def samples(m: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in m.registry.collect():
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def status(phase: str, ready: str, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, "currentPrimary": "east", "generation": 3,
            "conditions": [{"type": "Ready", "status": ready,
                            "reason": "Protected" if ready == "True" else "VRGNotReady"},
                           {"type": "Stalled", "status": "False", "reason": "NotStalled"},
                           {"type": "PeerConnected", "status": "Unknown", "reason": "PeerNeverSeen"}],
            **extra}


def test_phase_and_conditions_are_exported_with_their_reason() -> None:
    m = Metrics()
    m.observe_drcontrol("shop", "cart", "east", status("Protected", "True"))
    assert samples(m, "ramen_p2p_drcontrol_phase") == {
        (("name", "cart"), ("namespace", "shop"), ("phase", "Protected")): 1.0}
    conds = samples(m, "ramen_p2p_drcontrol_condition")
    assert conds[(("name", "cart"), ("namespace", "shop"), ("reason", "Protected"), ("type", "Ready"))] == 1.0
    assert conds[(("name", "cart"), ("namespace", "shop"), ("reason", "NotStalled"), ("type", "Stalled"))] == 0.0
    assert conds[(("name", "cart"), ("namespace", "shop"), ("reason", "PeerNeverSeen"), ("type", "PeerConnected"))] \
        == -1.0


def test_a_new_phase_or_reason_replaces_the_old_series() -> None:
    m = Metrics()
    m.observe_drcontrol("shop", "cart", "east", status("Protected", "True"))
    m.observe_drcontrol("shop", "cart", "east", status("Protecting", "False"))
    assert list(samples(m, "ramen_p2p_drcontrol_phase")) == [
        (("name", "cart"), ("namespace", "shop"), ("phase", "Protecting"))]
    ready = {k: v for k, v in samples(m, "ramen_p2p_drcontrol_condition").items() if ("type", "Ready") in k}
    assert ready == {(("name", "cart"), ("namespace", "shop"), ("reason", "VRGNotReady"), ("type", "Ready")): 0.0}


def test_an_action_in_progress_exports_its_start_and_loses_it_when_done() -> None:
    m = Metrics()
    started = "2026-12-01T10:00:00Z"
    running = {"action": "Relocate", "targetCluster": "west", "result": "InProgress", "startedAt": started}
    m.observe_drcontrol("shop", "cart", "east", status("Relocating", "False", lastAction=running))
    want = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC).timestamp()
    assert samples(m, "ramen_p2p_action_started_timestamp_seconds") == {
        (("action", "Relocate"), ("name", "cart"), ("namespace", "shop"), ("target", "west")): want}
    done = {**running, "result": "Succeeded", "completedAt": "2026-12-01T10:01:00Z", "durationSeconds": 60}
    m.observe_drcontrol("shop", "cart", "east", status("Protected", "True", lastAction=done))
    assert samples(m, "ramen_p2p_action_started_timestamp_seconds") == {}
    assert samples(m, "ramen_p2p_last_action_duration_seconds") == {
        (("action", "Relocate"), ("name", "cart"), ("namespace", "shop")): 60.0}


def test_a_deleted_drcontrol_leaves_no_series_behind() -> None:
    m = Metrics()
    running = {"action": "Failover", "targetCluster": "east", "result": "InProgress",
               "startedAt": "2026-12-01T10:00:00Z"}
    m.observe_drcontrol("shop", "cart", "east", status("FailingOver", "False", lastAction=running))
    m.observe_drcontrol("shop", "db", "east", status("Protected", "True"))
    m.forget_drcontrol("shop", "cart")
    for name in ("ramen_p2p_drcontrol_phase", "ramen_p2p_drcontrol_condition", "ramen_p2p_is_primary",
                 "ramen_p2p_action_started_timestamp_seconds", "ramen_p2p_ready_for_application",
                 "ramen_p2p_drstate_generation"):
        assert all(("name", "cart") not in k for k in samples(m, name)), name
    assert any(("name", "db") in k for k in samples(m, "ramen_p2p_drcontrol_phase"))


def test_s3_requests_are_counted_by_kind_of_object() -> None:
    assert [object_kind(k) for k in ("p/ns/app/dr-state", "ns/app/dr-state-acceptor", "ns/app/dr-intent/east",
                                     "ns/app/cluster-status/west", "cluster-info/east/digest",
                                     "cluster-info/east/health", "ns/app/velero/x")] == \
        ["dr-state", "dr-state-acceptor", "dr-intent", "cluster-status", "digest", "health", "other"]


def test_api_requests_are_exported_by_verb() -> None:
    m = Metrics()
    stats = RequestStats()
    m.count_kube_requests(stats)
    for verb in ("get", "get", "patch"):
        stats.record(verb)
    text = generate_latest(m.registry).decode()
    assert 'ramen_p2p_kube_requests_total{verb="get"} 2.0' in text
    assert 'ramen_p2p_kube_requests_total{verb="patch"} 1.0' in text
    m.count_kube_requests(RequestStats())  # a second Manager on the same metrics: no duplicate series
    assert "ramen_p2p_kube_requests_total{" not in generate_latest(m.registry).decode()


def test_nudges_are_exported_by_outcome() -> None:
    m = Metrics()
    counts = {"sent": 3, "coalesced": 40, "failed": 0, "skipped": 1}
    m.count_nudges(lambda: counts)
    text = generate_latest(m.registry).decode()
    assert 'ramen_p2p_peer_nudges_total{outcome="sent"} 3.0' in text
    assert 'ramen_p2p_peer_nudges_total{outcome="coalesced"} 40.0' in text
    m.count_nudges(lambda: {})  # a second Manager on the same metrics: no duplicate series
    assert "ramen_p2p_peer_nudges_total{" not in generate_latest(m.registry).decode()
