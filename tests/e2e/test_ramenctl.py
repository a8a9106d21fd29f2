"""ramenctl against both operators as processes: the views and actions a site outage calls for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from e2e import harness
from tests.e2e.conftest import DRPair


def ramenctl(args: list[str], s3: dict[str, str] | None = None, timeout: float = 150,
             ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if s3 is not None:
        env |= {"AWS_ACCESS_KEY_ID": s3["accessKeyId"], "AWS_SECRET_ACCESS_KEY": s3["secretAccessKey"]}
    return subprocess.run([sys.executable, "-m", "reconciler.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=harness.ROOT)


def s3_flags(s3: dict[str, str]) -> list[str]:
    return ["--endpoint", s3["endpoint"], "--bucket", s3["bucket"], "--region", s3["region"]]


def dead_kubeconfig(real: Path, tmp: Path) -> Path:
    """The same credentials pointed at a port nobody listens on: a site whose API server is gone."""
    cfg: dict[str, Any] = yaml.safe_load(real.read_text())
    cfg["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    out = tmp / "dead.kubeconfig"
    out.write_text(yaml.safe_dump(cfg))
    return out


def test_status_with_one_cluster_unreachable_shows_the_other_and_both_digests(drpair: DRPair, tmp_path: Path) -> None:
    drpair.protect_on_east()
    app = f"{drpair.namespace}/app"
    dead = dead_kubeconfig(drpair.clusters["west"].kubeconfig, tmp_path)
    args = ["status", "--kubeconfig-east", str(drpair.clusters["east"].kubeconfig), "--kubeconfig-west", str(dead),
            "-n", drpair.namespace, *s3_flags(drpair.env.s3)]
    r = ramenctl([*args, "-o", "json"], drpair.env.s3)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    kube = {c["name"]: c["kube"] for c in rep["clusters"]}
    assert kube["east"] == "ok" and kube["west"].startswith("unreachable")
    assert all(c["stale"] is False for c in rep["clusters"]), rep["clusters"]
    (a,) = rep["apps"]
    assert (a["namespace"] + "/" + a["name"], a["primary"], a["generation"]) == (app, "east", 1)
    by = {c["cluster"]: c for c in a["clusters"]}
    # East is read through its API server and its digest; west only through its digest in S3.
    assert (by["east"]["role"], by["east"]["ready"], by["east"]["phase"]) == ("primary", "True", "Protected")
    assert (by["west"]["role"], by["west"]["observed_generation"], by["west"]["ready"]) == ("secondary", 1, None)
    assert a["healthy"], a["problems"]

    table = ramenctl(args, drpair.env.s3)
    assert table.returncode == 0 and "Traceback" not in table.stderr
    lines = table.stdout.splitlines()
    assert any(line.startswith("west") and "unreachable" in line for line in lines), table.stdout
    assert any(line.split()[:5] == [app, "east", "1", "east", "primary"] for line in lines), table.stdout

    # S3 only, with no kubeconfig at all: the survivor's view still names the Primary.
    s3_only = ramenctl(["status", "--clusters", "east,west", "-n", drpair.namespace, "-o", "json",
                        *s3_flags(drpair.env.s3)], drpair.env.s3)
    assert s3_only.returncode == 0, s3_only.stderr
    assert json.loads(s3_only.stdout)["apps"][0]["primary"] == "east"


def test_cancel_clears_the_action_on_the_clusters_it_reaches(drpair: DRPair, tmp_path: Path) -> None:
    drpair.protect_on_east()
    app = f"{drpair.namespace}/app"
    west = ["--kubeconfig-west", str(drpair.clusters["west"].kubeconfig)]
    dead_east = ["--kubeconfig-east", str(dead_kubeconfig(drpair.clusters["east"].kubeconfig, tmp_path))]
    # Pause west's operator so the relocate stays pending until it is cancelled.
    drpair.operators["west"].stop()
    r = ramenctl(["relocate", app, "--to", "west", *west, *dead_east, *s3_flags(drpair.env.s3)], drpair.env.s3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "set Relocate->west on west" in r.stdout
    c = ramenctl(["cancel", app, *west, *dead_east])
    assert c.returncode == 0, c.stdout + c.stderr
    assert "west: cleared Relocate->west" in c.stdout and "east: not changed (unreachable" in c.stdout
    assert not drpair.drc("west")["spec"].get("action")


def test_failover_wait_while_the_peer_operator_is_dead(drpair: DRPair) -> None:
    drpair.protect_on_east()
    app = f"{drpair.namespace}/app"
    drpair.operators["east"].kill()
    drpair.wait(lambda: harness.condition(drpair.drc("west"), "PeerConnected").get("reason") == "PeerStale",
                "west reports east's heartbeat as stale")
    west = ["--kubeconfig-west", str(drpair.clusters["west"].kubeconfig), *s3_flags(drpair.env.s3)]

    # A relocate needs east to demote: refused, with the way out.
    r = ramenctl(["relocate", app, "--to", "west", *west], drpair.env.s3)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "east must demote first" in r.stderr and f"ramenctl failover {app} --to west" in r.stderr
    assert not drpair.drc("west")["spec"].get("action")

    f = ramenctl(["failover", app, "--to", "west", "--wait", "--timeout", "90s", *west], drpair.env.s3)
    assert f.returncode == 0, f.stdout + f.stderr
    steps = [line.split("] ", 1)[1] for line in f.stdout.splitlines() if line.startswith("[")]
    done = [s for s in steps if not s.startswith(" ")]
    assert [s.removesuffix(" (implied by the next step)") for s in done[1:]] == [
        "intent written", "generation taken", "VRG primary", "ready"], f.stdout
    assert f"Failover of {app} to west succeeded" in f.stdout
    assert drpair.primary_ready("west", 2)

    # The survivor's view: west Primary at generation 2, east silent and still at generation 1.
    s = ramenctl(["status", "--clusters", "east,west", "-n", drpair.namespace, "--stale-after", "5",
                  "--not-healthy", "-o", "json", *s3_flags(drpair.env.s3)], drpair.env.s3)
    assert s.returncode == 1, s.stderr
    (a,) = json.loads(s.stdout)["apps"]
    assert (a["primary"], a["generation"]) == ("west", 2)
    assert "east: heartbeat stale" in a["problems"] and "east: at generation 1, not 2" in a["problems"]


def test_relocate_wait_with_volsync_shows_every_step_in_order(drpair: DRPair) -> None:
    drpair.protect_on_east(volsync=True)
    app = f"{drpair.namespace}/app"
    both = ["--kubeconfig-east", str(drpair.clusters["east"].kubeconfig),
            "--kubeconfig-west", str(drpair.clusters["west"].kubeconfig)]
    r = ramenctl(["relocate", app, "--to", "west", "--wait", "--timeout", "90s", "--interval", "0.3", *both,
                  *s3_flags(drpair.env.s3)], drpair.env.s3)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line.split("] ", 1)[1] for line in r.stdout.splitlines() if line.startswith("[")]
    assert {"set Relocate->west on east (spec generation 2)", "set Relocate->west on west (spec generation 2)"} <= \
        set(lines)
    steps = [s.removesuffix(" (implied by the next step)") for s in lines
             if not s.startswith((" ", "set "))]
    assert steps == ["intent written", "final sync", "demoted", "released", "generation taken", "VRG primary",
                     "ready"], r.stdout
    assert drpair.primary_ready("west", 2)
    # Asked again once done: nothing to do.
    again = ramenctl(["relocate", app, "--to", "west", *both], drpair.env.s3)
    assert again.returncode == 0 and "west is already Primary" in again.stdout, again.stdout + again.stderr
