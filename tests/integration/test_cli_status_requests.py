"""ramenctl status against the real S3 server: what a refresh costs, counted at the HTTP layer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from e2e.s3count import counting_store
from reconciler.cli.common import S3Target
from reconciler.cli.status import Collector
from reconciler.s3peer import AppKey, ClusterStatus, Coordinator, KeySchema, ObjectStore, Role
from reconciler.s3peer.quorum import QuorumDRState

pytestmark = pytest.mark.realenv


def test_a_refresh_costs_three_gets_per_cluster_and_one_per_app_and_watch_sees_changes(
        s3_settings: dict[str, str], key_prefix: str) -> None:
    keys = KeySchema(key_prefix)
    writer = ObjectStore.from_settings(s3_settings)
    east, west = Coordinator(writer, "east", keys=keys), Coordinator(writer, "west", keys=keys)
    apps = [AppKey("ns", f"app{i}") for i in range(3)]
    for app in apps:
        east.claim_initial(app)
        east.write_cluster_status(app, ClusterStatus(Role.PRIMARY, 1))
        west.write_cluster_status(app, ClusterStatus(Role.SECONDARY, 1))
    east.heartbeat(operator_version="t")
    west.heartbeat(operator_version="t")

    store, counts = counting_store(s3_settings)
    statuses: list[int] = []

    def status_hook(http_response: Any, **_: Any) -> None:
        statuses.append(http_response.status_code)

    store.client.meta.events.register("after-call.s3.GetObject", status_hook)
    target = S3Target(store, keys, None, s3_settings["endpoint"], s3_settings["bucket"], "test")
    collector = Collector(target, [], ["east", "west"], stale_after=60)
    first = collector.collect()
    # health, digest index and its one page per cluster (three apps fit one page), dr-state per app
    assert counts == {"GetObject": 2 * 3 + len(apps)}
    assert [(a.name, a.primary, a.generation, [c.role for c in a.clusters]) for a in first.apps] == [
        (a.name, "east", 1, ["primary", "secondary"]) for a in apps]
    assert all(a.healthy for a in first.apps)

    # Nothing changed: the same GETs, answered 304 from the ETags held; then one app moves on.
    counts.clear()
    statuses.clear()
    collector.collect()
    assert counts == {"GetObject": 2 * 3 + len(apps)}
    assert statuses == [304] * (2 * 3 + len(apps))
    west.write_cluster_status(apps[0], ClusterStatus(Role.SECONDARY, 0))
    again = collector.collect()
    assert again.apps[0].problems == ["west: at generation 0, not 1"]


def test_watch_redraws_when_a_cluster_reports_a_change(s3_settings: dict[str, str], key_prefix: str) -> None:
    keys = KeySchema(key_prefix)
    store = ObjectStore.from_settings(s3_settings)
    east, west = Coordinator(store, "east", keys=keys), Coordinator(store, "west", keys=keys)
    app = AppKey("ns", "app")
    east.claim_initial(app)
    east.write_cluster_status(app, ClusterStatus(Role.PRIMARY, 1))
    west.write_cluster_status(app, ClusterStatus(Role.SECONDARY, 0))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3_settings["accessKeyId"],
           "AWS_SECRET_ACCESS_KEY": s3_settings["secretAccessKey"]}
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli.main", "status", "--watch", "--interval", "0.3",
                             "--endpoint", s3_settings["endpoint"], "--bucket", s3_settings["bucket"],
                             "--key-prefix", key_prefix, "--clusters", "east,west"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(6)  # the interpreter's start and the first refresh, on a loaded machine
        west.write_cluster_status(app, ClusterStatus(Role.SECONDARY, 1))
        time.sleep(3)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "Traceback" not in err, err
    frames = [f for f in re.split(r"(?m)^\d\d:\d\d:\d\d  \(every 0.3s, Ctrl-C to stop\)$", out) if f.strip()]
    # About 25 refreshes in 9 s: unchanged ones print nothing except every 10th (for the ages), so a
    # handful of frames, the first with west behind and the last, after the change, without.
    assert 2 <= len(frames) <= 5, out
    assert "ns/app: west: at generation 0, not 1" in frames[0], out
    assert "problem" not in frames[-1], out


def test_an_app_with_dr_state_over_a_quorum_shows_the_acceptor_in_this_store(
        s3_settings: dict[str, str], key_prefix: str) -> None:
    # One real store stands for all three here: ramenctl reads only the one it is given.
    keys = KeySchema(key_prefix)
    store = ObjectStore.from_settings(s3_settings)
    quorum = QuorumDRState([store, store, store], "east", keys=keys)
    east = Coordinator(store, "east", keys=keys, quorum=quorum)
    app = AppKey("ns", "quorum-app")
    assert east.claim_initial(app).won
    east.write_cluster_status(app, ClusterStatus(Role.PRIMARY, 1))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3_settings["accessKeyId"],
           "AWS_SECRET_ACCESS_KEY": s3_settings["secretAccessKey"]}
    out = subprocess.run([sys.executable, "-m", "reconciler.cli.main", "status", "-o", "json",
                          "--endpoint", s3_settings["endpoint"], "--bucket", s3_settings["bucket"],
                          "--key-prefix", key_prefix, "--clusters", "east,west"],
                         capture_output=True, text=True, env=env, timeout=60)
    report = json.loads(out.stdout)
    [view] = [a for a in report["apps"] if a["name"] == "quorum-app"]
    assert (view["primary"], view["generation"], view["from_acceptor"]) == ("east", 1, True)
    assert "no dr-state" not in " ".join(view["problems"])
