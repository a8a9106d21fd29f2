"""The VRG simulator (a test double for Ramen's VRG controller) behaves as the scenarios assume."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.crdinstall import EXTERNAL_CRDS, install_crds
from e2e.localenv.clients import Cluster
from e2e.vrgsim import GROUP, PLURAL, VERSION, Simulator


@pytest.fixture
def simulator(east: Cluster, s3: Any, s3_settings: dict[str, str], key_prefix: str,
              tmp_path: Path) -> Iterator[Simulator]:
    install_crds(east.api, EXTERNAL_CRDS)
    sim = Simulator(east.custom, "east", s3, s3_settings["bucket"], key_prefix, 0.3, tmp_path / "timeline.jsonl")
    t = threading.Thread(target=sim.run, args=(0.05,), daemon=True)
    t.start()
    yield sim
    sim.stop.set()
    t.join(timeout=5)


def _vrg(namespace: str, state: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeReplicationGroup",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {"replicationState": state, "pvcSelector": {"matchLabels": {"app": "a"}},
                     "s3Profiles": ["s3"], "async": {"schedulingInterval": "1m"}}}


def _wait(pred: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_simulator_reports_primary_and_uploads_gzip_metadata(
    simulator: Simulator, east: Cluster, namespace: str, s3: Any, s3_settings: dict[str, str], key_prefix: str
) -> None:
    east.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _vrg(namespace, "primary"))

    def status() -> dict[str, Any]:
        obj = east.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app")
        return dict(obj.get("status") or {})

    _wait(lambda: status().get("state") == "Primary")
    st = status()
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["DataReady"]["status"] == "True" and conds["ClusterDataReady"]["status"] == "True"
    assert conds["DataReady"]["observedGeneration"] == st["observedGeneration"] == 1
    body = s3.get_object(Bucket=s3_settings["bucket"],
                         Key=f"{key_prefix}{namespace}/app/v1alpha1.VolumeReplicationGroup/a")["Body"].read()
    assert json.loads(gzip.decompress(body))["spec"]["replicationState"] == "primary"


def test_simulator_honours_the_final_sync_flags_and_demotion(simulator: Simulator, east: Cluster,
                                                              namespace: str) -> None:
    east.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _vrg(namespace, "primary"))

    def get() -> dict[str, Any]:
        return dict(east.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app"))

    _wait(lambda: get().get("status", {}).get("state") == "Primary")
    east.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app",
                                               {"spec": {"prepareForFinalSync": True}})
    _wait(lambda: get()["status"].get("prepareForFinalSyncComplete") is True)
    assert get()["status"].get("finalSyncComplete") is False
    east.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app",
                                               {"spec": {"runFinalSync": True}})
    _wait(lambda: get()["status"].get("finalSyncComplete") is True)
    east.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app",
                                               {"spec": {"replicationState": "secondary"}})
    _wait(lambda: get()["status"].get("state") == "Secondary")
    # Like Ramen's VRG controller: the final-sync flags are reported only while Primary.
    assert get()["status"]["finalSyncComplete"] is False
    assert get()["status"]["prepareForFinalSyncComplete"] is False
    assert simulator.timeline is not None
    events = [json.loads(line) for line in simulator.timeline.read_text().splitlines()]
    states = [e["state"] for e in events if e["event"] == "status"]
    assert states[0] == "Primary" and states[-1] == "Secondary"


def test_simulator_waits_its_delay_before_acting(simulator: Simulator, east: Cluster, namespace: str) -> None:
    simulator.delay = 2.0
    t0 = time.monotonic()
    east.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _vrg(namespace, "secondary"))
    _wait(lambda: (east.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app")
                   .get("status", {}).get("state")) == "Secondary")
    assert time.monotonic() - t0 >= 2.0


def test_simulator_with_workers_acts_on_several_vrgs_at_once(east: Cluster, s3: Any, s3_settings: dict[str, str],
                                                             key_prefix: str, namespace: str,
                                                             tmp_path: Path) -> None:
    # Ramen's VRG controller runs up to maxConcurrentReconciles reconciles; the simulator's workers
    # do the same. Every upload waits at a barrier for three others: one at a time, it would break.
    install_crds(east.api, EXTERNAL_CRDS)
    sim = Simulator(east.custom, "east", s3, s3_settings["bucket"], key_prefix, 0.1, tmp_path / "timeline.jsonl",
                    workers=4)
    together = threading.Barrier(4, timeout=10)
    upload = sim.upload

    def upload_together(vrg: dict[str, Any]) -> None:
        together.wait()
        upload(vrg)

    sim.upload = upload_together  # type: ignore[method-assign]
    t = threading.Thread(target=sim.run, args=(0.05,), daemon=True)
    t.start()
    try:
        names = [f"app-{i}" for i in range(4)]
        for name in names:
            east.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                        {**_vrg(namespace, "primary"),
                                                         "metadata": {"name": name, "namespace": namespace}})

        def conditions(name: str) -> dict[str, str]:
            obj = east.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}

        _wait(lambda: all(conditions(n).get("ClusterDataProtected") for n in names))
        # Uploaded, not UploadError: the four uploads met at the barrier.
        assert all(conditions(n)["ClusterDataProtected"] == "True" for n in names)
        assert not together.broken
    finally:
        sim.stop.set()
        t.join(timeout=5)


def test_a_step_looks_only_at_the_vrgs_that_changed_or_fell_due(simulator: Simulator, east: Cluster,
                                                                 namespace: str) -> None:
    # A step over every VRG five times a second cost the simulator CPU in proportion to the VRGs it
    # held; settled VRGs must cost nothing, a changed one is looked at again.
    looked: list[tuple[str, str]] = []
    step_one = simulator._step_one

    def counting(key: tuple[str, str], vrg: dict[str, Any] | None) -> None:
        looked.append(key)
        step_one(key, vrg)

    simulator._step_one = counting  # type: ignore[method-assign]
    east.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _vrg(namespace, "secondary"))
    _wait(lambda: (east.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app")
                   .get("status", {}).get("state")) == "Secondary")
    time.sleep(1.0)  # the watch event of its own status patch, and the step after it
    looked.clear()
    time.sleep(1.0)  # some 20 steps with nothing changed
    assert looked == []
    east.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app",
                                               {"spec": {"replicationState": "primary"}})
    _wait(lambda: (east.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app")
                   .get("status", {}).get("state")) == "Primary")
    assert (namespace, "app") in looked


def test_a_watch_that_ends_its_time_goes_on_without_listing_again(east: Cluster, s3: Any, s3_settings: dict[str, str],
                                                                   key_prefix: str, namespace: str,
                                                                   tmp_path: Path) -> None:
    # A LIST of every VRG each 30 s (and a step over all of them after it) is what the watch spares.
    install_crds(east.api, EXTERNAL_CRDS)
    api = east.custom
    calls: list[bool] = []
    list_all = api.list_cluster_custom_object

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(bool(kwargs.get("watch")))
        return list_all(*args, **kwargs)

    api.list_cluster_custom_object = counting
    sim = Simulator(api, "east", s3, s3_settings["bucket"], key_prefix, 0.1, tmp_path / "timeline.jsonl")
    sim.watch_seconds = 1
    t = threading.Thread(target=sim.run, args=(0.05,), daemon=True)
    t.start()
    try:
        time.sleep(3.5)  # three watches or more run out their second
        east.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _vrg(namespace, "secondary"))
        _wait(lambda: (east.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "app")
                       .get("status", {}).get("state")) == "Secondary")
    finally:
        sim.stop.set()
        t.join(timeout=5)
    assert calls.count(False) == 1, calls
    assert calls.count(True) >= 3, calls
