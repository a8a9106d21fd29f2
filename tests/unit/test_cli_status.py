"""ramenctl status: parsing of its arguments, health judgement and rendering (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from reconciler.cli import main as cli
from reconciler.cli.common import CLIError, parse_app, parse_kubeconfigs, rewrite_kubeconfig_flags
from reconciler.cli.status import (
    AppCluster,
    AppView,
    ClusterView,
    Report,
    drc_reasons,
    find_problems,
    fmt_age,
    last_action_text,
    render,
    select,
)


def test_kubeconfig_cluster_flags_become_name_value_pairs() -> None:
    assert rewrite_kubeconfig_flags(["status", "--kubeconfig-east", "a", "--kubeconfig-west=b", "-o", "wide"]) == [
        "status", "--kubeconfig", "east=a", "--kubeconfig", "west=b", "-o", "wide"]
    with pytest.raises(CLIError):
        rewrite_kubeconfig_flags(["--kubeconfig-east"])


def test_kubeconfig_pairs_must_name_a_cluster_and_an_existing_file(tmp_path) -> None:
    kc = tmp_path / "k"
    kc.write_text("{}")
    assert parse_kubeconfigs([f"east={kc}"]) == {"east": kc}
    for bad in ["east", "East=x", f"=x{kc}", "east=/nonexistent/kubeconfig"]:
        with pytest.raises(CLIError):
            parse_kubeconfigs([bad])


def test_app_argument_is_namespace_slash_name() -> None:
    assert parse_app("my-app/my-app-dr") == ("my-app", "my-app-dr")
    for bad in ["my-app", "/x", "x/", "A/b", "a/b/c"]:
        with pytest.raises(CLIError):
            parse_app(bad)


def test_ages_are_short() -> None:
    assert [fmt_age(v) for v in (None, 0, 59.9, 61, 3661, 90000)] == ["-", "0s", "59s", "1m1s", "1h1m", "1d1h"]


def _app(east_role: str = "primary", west_role: str = "secondary", gen: int = 3, west_obs: int = 3,
         east_ready: str | None = None, west_ready: str | None = None) -> AppView:
    return AppView("ns", "app", primary="east", generation=gen, clusters=[
        AppCluster("east", east_role, gen, ready=east_ready),
        AppCluster("west", west_role, west_obs, ready=west_ready)])


def test_a_settled_pair_has_no_problems() -> None:
    assert find_problems(_app(), {}) == []
    assert find_problems(_app(east_ready="True", west_ready="False"), {}) == []


def test_problems_name_the_cluster_and_what_is_wrong() -> None:
    assert find_problems(_app(west_obs=2), {}) == ["west: at generation 2, not 3"]
    assert find_problems(_app(west_role="primary"), {}) == ["west: reports primary but dr-state names east"]
    assert find_problems(_app(east_role="secondary-ready"), {}) == ["east: named Primary but reports secondary-ready"]
    assert find_problems(_app(east_ready="True", west_ready="True"), {}) == ["ReadyForApplication on east and west"]
    assert find_problems(_app(east_ready="False"), {}) == ["east: not ReadyForApplication"]
    stale = {"west": ClusterView("west", heartbeat_age=400, stale=True)}
    assert find_problems(_app(), stale) == ["west: heartbeat stale"]
    missing = AppView("ns", "app", primary="east", generation=1, clusters=[AppCluster("east", "primary", 1),
                                                                          AppCluster("west")])
    assert find_problems(missing, {}) == ["west: does not report the app"]
    assert find_problems(AppView("ns", "app", clusters=[AppCluster("east")]), {}) == ["no dr-state (not claimed yet)"]


def test_drcontrol_reasons_prefer_a_stall_over_its_echo_in_ready() -> None:
    drc = {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "StateRollback", "message": "m"},
        {"type": "Stalled", "status": "True", "reason": "StateRollback", "message": "generation 1 below 2"}]}}
    assert drc_reasons(drc) == ["Stalled=True StateRollback: generation 1 below 2"]
    assert drc_reasons({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == []
    assert last_action_text({"status": {"lastAction": {"action": "Failover", "targetCluster": "west",
                                                       "result": "Succeeded", "durationSeconds": 4.2}}}) == \
        "Failover->west Succeeded (4s)"
    assert last_action_text({"status": {}}) is None


def _report() -> Report:
    ok = _app()
    ok.clusters[0].policy = "p1"
    bad = AppView("other", "db", primary="west", generation=2, clusters=[AppCluster("east"),
                                                                          AppCluster("west", "primary", 2)])
    bad.problems = ["east: does not report the app"]
    return Report([ClusterView("east", 3, False, 7, "0.1.0", True, kube="ok"),
                   ClusterView("west", None, None, s3_error="no heartbeat", kube="unreachable (connection refused)")],
                  [ok, bad], "http://s3 bucket b")


def test_table_has_one_row_per_app_and_cluster_and_lists_problems() -> None:
    text = render(_report(), "table")
    lines = text.splitlines()
    assert lines[0].split() == ["CLUSTER", "HEARTBEAT", "STALE", "OPERATOR", "KUBE"]
    assert lines[1].split()[:5] == ["east", "3s", "ago", "(seq", "7)"]
    assert "unreachable (connection refused)" in lines[2]
    assert lines[4].split() == ["APP", "PRIMARY", "GEN", "CLUSTER", "ROLE", "OBSERVED", "READY", "PHASE", "HEALTH"]
    assert lines[5].split() == ["ns/app", "east", "3", "east", "primary", "3", "-", "-", "ok"]
    assert lines[6].split() == ["west", "secondary", "3", "-", "-"]
    assert lines[7].split()[-2:] == ["1", "problem"]
    assert lines[-1] == "other/db: east: does not report the app"
    wide = render(_report(), "wide").splitlines()
    assert "POLICY" in wide[4] and "LASTACTION" in wide[4] and "p1" in wide[5]


def test_json_and_yaml_carry_the_same_structured_report() -> None:
    as_json = json.loads(render(_report(), "json"))
    assert as_json == yaml.safe_load(render(_report(), "yaml"))
    assert [a["healthy"] for a in as_json["apps"]] == [True, False]
    assert as_json["apps"][0]["clusters"][1] == {"cluster": "west", "role": "secondary", "observed_generation": 3,
                                                 "ready": None, "phase": None, "reasons": [], "last_action": None,
                                                 "policy": None}
    assert as_json["clusters"][1]["kube"] == "unreachable (connection refused)"


def test_filters_select_by_namespace_policy_and_health() -> None:
    r = _report()
    assert [a.key for a in select(r, "other", None, False).apps] == ["other/db"]
    assert [a.key for a in select(r, None, "p1", False).apps] == ["ns/app"]
    assert [a.key for a in select(r, None, None, True).apps] == ["other/db"]


@pytest.mark.parametrize("argv, message", [
    (["status", "--kubeconfig", "east"], "CLUSTER=PATH"),
    (["status", "--kubeconfig-east", "/nonexistent"], "no such file"),
    (["status", "--policy", "p", "--endpoint", "http://x", "--bucket", "b"], "--policy needs a kubeconfig"),
    (["status", "--endpoint", "http://127.0.0.1:1", "--bucket", "b", "--credentials", "/nonexistent"],
     "credentials /nonexistent"),
    (["status", "--interval", "0"], "must be positive"),
    (["status", "--endpoint", "s3.example.com", "--bucket", "b"], "must be an http(s) URL"),
    (["status", "--clusters", "East", "--endpoint", "http://127.0.0.1:1", "--bucket", "b"], "invalid cluster name"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    if "--credentials" not in argv:  # so that the flags, not missing credentials, are what is judged
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_status_without_any_s3_settings_says_what_to_give(capsys, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    assert cli.main(["status"]) == 2
    assert "no S3 settings" in capsys.readouterr().err


def test_credentials_file_is_a_secret_manifest_and_never_echoed(tmp_path, capsys) -> None:
    sec = tmp_path / "s.yaml"
    sec.write_text(yaml.safe_dump({"kind": "Secret", "stringData": {"AWS_ACCESS_KEY_ID": "AKIDSECRET1"}}))
    assert cli.main(["status", "--endpoint", "http://127.0.0.1:1", "--bucket", "b", "--credentials", str(sec)]) == 2
    err = capsys.readouterr().err
    assert "lacks AWS_SECRET_ACCESS_KEY" in err and "AKIDSECRET1" not in err


def test_a_digest_that_could_not_be_read_is_not_called_silence() -> None:
    app = AppView("ns", "app", primary="east", generation=1, clusters=[AppCluster("east", "primary", 1),
                                                                       AppCluster("west")])
    down = {"west": ClusterView("west", s3_error="S3Unreachable")}
    assert find_problems(app, down) == ["west: digest not read (S3Unreachable)"]


class _Listing:
    """A cluster's DRControls as the API would list them (the collector only lists)."""

    def __init__(self, name: str, drcs: list[dict[str, Any]]) -> None:
        self.name, self._drcs = name, drcs

    def list_drcs(self) -> list[dict[str, Any]]:
        return self._drcs


def test_without_s3_the_drcontrols_views_of_dr_state_are_shown() -> None:
    from reconciler.cli.status import Collector

    def drc(primary: str, ready: str) -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "name": "app"}, "spec": {"drPolicyRef": {"name": "p"}},
                "status": {"currentPrimary": primary, "generation": 2, "phase": "Protected",
                           "conditions": [{"type": "ReadyForApplication", "status": ready}]}}

    kubes = [_Listing("east", [drc("west", "False")]), _Listing("west", [drc("west", "True")])]
    rep = Collector(None, kubes, ["east", "west"], 180).collect()  # type: ignore[arg-type]
    (a,) = rep.apps
    assert (a.primary, a.generation, a.policy) == ("west", 2, "p")
    assert [(c.cluster, c.role, c.observed_generation, c.ready) for c in a.clusters] == [
        ("east", "secondary", 2, "False"), ("west", "primary", 2, "True")]
    assert a.healthy, a.problems
    assert "S3 not read" in render(rep, "table")
