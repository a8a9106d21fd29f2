"""ramenctl failover/relocate: the progress steps judged from DRControls and S3 evidence (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.cli import main as cli
from reconciler.cli.actions import Context, Observed, Side, evaluate, failure, parse_timeout, peer_heard, steps_for
from reconciler.cli.common import CLIError

CTX = Context("Relocate", "west", "east", base_generation=1, spec_generations={"west": 2, "east": 2})


def _drc(primary: str, gen: int, ready: str = "False", la: dict[str, Any] | None = None,
         rfa_reason: str = "") -> dict[str, Any]:
    return {"status": {"currentPrimary": primary, "generation": gen, "lastAction": la or {},
                       "conditions": [{"type": "ReadyForApplication", "status": ready, "reason": rfa_reason}]}}


def test_steps_follow_the_action() -> None:
    assert [s.name for s in steps_for("Failover", False)] == ["intent written", "generation taken", "VRG primary",
                                                               "ready"]
    assert [s.name for s in steps_for("Relocate", True)] == ["intent written", "final sync", "demoted", "released",
                                                              "generation taken", "VRG primary", "ready"]


def test_nothing_is_done_before_the_operators_move() -> None:
    sides = {"west": Side("west", None, _drc("east", 1)), "east": Side("east", None, _drc("east", 1, "True"))}
    obs = Observed(primary="east", generation=1, roles={"east": ("primary", 1, False), "west": ("secondary", 1, False)})
    assert not any(evaluate(CTX, sides, obs, None).values())


def test_relocate_evidence_from_s3_digests_and_dr_state() -> None:
    sides: dict[str, Side] = {}
    obs = Observed(primary="east", generation=1, roles={"east": ("secondary-ready", 1, False),
                                                        "west": ("secondary", 1, True)})
    done = evaluate(CTX, sides, obs, None)
    assert done["intent written"] and done["demoted"] and done["released"] and not done["generation taken"]
    obs = Observed(primary="west", generation=2, roles={"east": ("secondary", 2, False), "west": ("primary", 2, True)})
    done = evaluate(CTX, sides, obs, None)
    # Without the target's DRControl, its own report in S3 is what "ready" rests on.
    assert done["generation taken"] and done["VRG primary"] and done["ready"]


def test_ready_needs_the_target_drcontrol_when_it_is_readable() -> None:
    obs = Observed(primary="west", generation=2, roles={"west": ("primary", 2, False)})
    la = {"action": "Relocate", "targetCluster": "west", "specGeneration": 2, "result": "InProgress"}
    sides = {"west": Side("west", None, _drc("west", 2, "False", la))}
    vrg = {"status": {"state": "Primary"}}
    done = evaluate(CTX, sides, obs, vrg)
    assert done["intent written"] and done["VRG primary"] and not done["ready"]
    sides["west"].drc = _drc("west", 2, "True", {**la, "result": "Succeeded"})
    assert evaluate(CTX, sides, obs, vrg)["ready"]
    assert not evaluate(CTX, sides, obs, {"status": {"state": "Secondary"}})["VRG primary"]


def test_an_older_action_result_is_not_this_actions_result() -> None:
    old = {"action": "Relocate", "targetCluster": "west", "specGeneration": 1, "result": "Failed", "message": "x"}
    assert failure(CTX, {"west": Side("west", None, _drc("east", 1, la=old))}) is None
    new = {**old, "specGeneration": 2, "message": "VRG refused"}
    assert failure(CTX, {"west": Side("west", None, _drc("east", 1, la=new))}) == "west: VRG refused"


def test_timeouts_are_durations() -> None:
    assert parse_timeout("90s") == 90 and parse_timeout("1m30s") == 90
    for bad in ("soon", "0s"):
        with pytest.raises(CLIError):
            parse_timeout(bad)


@pytest.mark.parametrize("argv, message", [
    (["failover", "my-app", "--to", "west", "--kubeconfig-west", __file__], "NAMESPACE/NAME"),
    (["failover", "a/b", "--to", "west"], "at least one DR cluster"),
    (["relocate", "a/b", "--to", "west", "--kubeconfig-west", __file__, "--timeout", "soon"], "not a duration"),
    (["cancel", "a/b"], "at least one DR cluster"),
])
def test_bad_action_input_is_one_line_and_exit_code_2(argv, message, capsys) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_kubeconfig_that_is_not_one_is_a_usage_error(tmp_path, capsys) -> None:
    bad = tmp_path / "kc"
    bad.write_text("clusters: [")
    assert cli.main(["failover", "a/b", "--to", "west", "--kubeconfig-west", str(bad)]) == 2
    assert "kubeconfig for west" in capsys.readouterr().err


def test_the_old_primarys_vrg_shows_final_sync_and_demotion_before_the_release() -> None:
    ctx = Context("Relocate", "west", "east", 1, {"west": 2, "east": 2})
    obs = Observed(primary="east", generation=1, roles={"east": ("primary", 1, False)})
    synced = {"status": {"state": "Primary", "finalSyncComplete": True}}
    done = evaluate(ctx, {}, obs, None, synced)
    assert done["final sync"] and not done["demoted"] and not done["released"]
    done = evaluate(ctx, {}, obs, None, {"status": {"state": "Secondary", "finalSyncComplete": True}})
    assert done["final sync"] and done["demoted"] and not done["released"]


def test_a_relocate_hears_the_peer_through_either_witness() -> None:
    never = {"type": "PeerConnected", "status": "False", "reason": "PeerNeverSeen"}
    # The target's operator was paused before it heard the peer; S3 shows the peer is alive.
    assert peer_heard(never, 3.0, 30, s3_read=True) == (True, "PeerConnected=False PeerNeverSeen, heartbeat 3s old")
    assert peer_heard({"status": "True"}, None, 30, s3_read=False)[0]
    assert peer_heard(never, 45.0, 30, s3_read=True) == (False, "PeerConnected=False PeerNeverSeen, heartbeat 45s old")
    assert peer_heard({}, None, 30, s3_read=True) == (False, "no heartbeat in S3")
    # The target's operator said the peer went stale: a heartbeat younger than ramenctl's
    # --stale-after does not overrule the staleAfter that operator is configured with.
    stale = {"type": "PeerConnected", "status": "False", "reason": "PeerStale"}
    assert peer_heard(stale, 8.0, 180, s3_read=True) == (False, "PeerConnected=False PeerStale, heartbeat 8s old")
    assert peer_heard(never, None, 30, s3_read=False) == (False, "PeerConnected=False PeerNeverSeen, S3 not given")
