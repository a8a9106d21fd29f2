"""The local environment's parts are real: kube-apiservers with etcd, and an S3 server with atomic CAS."""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kubernetes import client, watch

from e2e.localenv import LocalEnv, StartError, build, up
from e2e.localenv.clients import Cluster
from e2e.localenv.procs import pid_alive

GROUP = "envcheck.ramen-p2p.io"


def _crd(plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": plural.capitalize()[:-1]},
            "versions": [{
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                }},
            }],
        },
    }


def _wait_established(c: Cluster, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = c.apiext.read_custom_resource_definition(name)
        conds = {x.type: x.status for x in (crd.status.conditions or [])}
        if conds.get("Established") == "True":
            return
        time.sleep(0.2)
    raise AssertionError(f"CRD {name} not Established on {c.name}")


@pytest.mark.parametrize("cluster_name", ["east", "west"])
def test_crd_established_and_custom_object_created_patched_watched(
    clusters: dict[str, Cluster], namespace: str, cluster_name: str
) -> None:
    c = clusters[cluster_name]
    plural = "gadgets"
    crd = _crd(plural)
    try:
        c.apiext.create_custom_resource_definition(crd)
    except client.ApiException as e:
        assert e.status == 409  # already installed by an earlier test run on this environment
    _wait_established(c, crd["metadata"]["name"])

    obj = {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}}
    created = c.custom.create_namespaced_custom_object(GROUP, "v1", namespace, plural, obj)
    rv = created["metadata"]["resourceVersion"]

    seen: list[tuple[str, int]] = []
    ready = threading.Event()

    def watch_it() -> None:
        w = watch.Watch()
        ready.set()
        for ev in w.stream(c.custom.list_namespaced_custom_object, GROUP, "v1", namespace, plural,
                           resource_version=rv, timeout_seconds=10):
            seen.append((ev["type"], ev["object"]["spec"]["size"]))
            if ev["object"]["spec"]["size"] == 2:
                w.stop()

    t = threading.Thread(target=watch_it)
    t.start()
    ready.wait()
    patched = c.custom.patch_namespaced_custom_object(GROUP, "v1", namespace, plural, "g1", {"spec": {"size": 2}})
    assert patched["spec"]["size"] == 2
    t.join(timeout=15)
    assert ("MODIFIED", 2) in seen


def test_each_cluster_is_a_separate_control_plane(east: Cluster, west: Cluster, namespace: str) -> None:
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="only-east"), data={"k": "v"})
    east.core.create_namespaced_config_map(namespace, cm)
    with pytest.raises(client.ApiException) as e:
        west.core.read_namespaced_config_map("only-east", namespace)
    assert e.value.status == 404


def test_apiserver_reports_the_built_release(east: Cluster) -> None:
    info = client.VersionApi(east.api).get_code()
    assert info.git_version == build.KUBERNETES_VERSION


def test_kubectl_reads_readyz_with_the_written_kubeconfig(localenv: LocalEnv) -> None:
    out = subprocess.run(
        [str(build.binaries().kubectl), "--kubeconfig", str(localenv.kubeconfig("east")), "get", "--raw", "/readyz"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    assert out.stdout.strip() == "ok"


def test_s3_settings_file_has_the_documented_fields(localenv: LocalEnv) -> None:
    data = json.loads(localenv.s3_config_file().read_text())
    assert set(data) == {"endpoint", "region", "bucket", "accessKeyId", "secretAccessKey", "component"}


def _status(e: ClientError) -> int:
    return int(e.response["ResponseMetadata"]["HTTPStatusCode"])


def test_s3_if_none_match_on_existing_key_is_refused(s3: Any, s3_settings: dict[str, str], key_prefix: str) -> None:
    bucket, key = s3_settings["bucket"], key_prefix + "exists"
    s3.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert _status(e.value) == 412
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first"


def test_s3_if_match_with_stale_etag_is_refused(s3: Any, s3_settings: dict[str, str], key_prefix: str) -> None:
    bucket, key = s3_settings["bucket"], key_prefix + "cas"
    stale = s3.put_object(Bucket=bucket, Key=key, Body=b"v1")["ETag"]
    fresh = s3.put_object(Bucket=bucket, Key=key, Body=b"v2", IfMatch=stale)["ETag"]
    assert fresh != stale
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=key, Body=b"v3", IfMatch=stale)
    assert _status(e.value) == 412
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"v2"


def test_s3_concurrent_conditional_creates_have_exactly_one_winner(
    s3: Any, s3_settings: dict[str, str], key_prefix: str
) -> None:
    bucket, writers, trials = s3_settings["bucket"], 8, 50
    bodies = [secrets.token_bytes(1024 * 1024) for _ in range(writers)]
    digests = [hashlib.sha256(b).hexdigest() for b in bodies]

    def attempt(key: str, i: int, start: threading.Barrier) -> bool:
        start.wait()
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=bodies[i], IfNoneMatch="*")
            return True
        except ClientError as e:
            if _status(e) == 412:
                return False
            raise

    with ThreadPoolExecutor(max_workers=writers) as pool:
        for trial in range(trials):
            key = f"{key_prefix}race-{trial}"
            barrier = threading.Barrier(writers)
            results = list(pool.map(lambda i, k=key, b=barrier: attempt(k, i, b), range(writers)))
            winners = [i for i, won in enumerate(results) if won]
            assert len(winners) == 1, f"trial {trial}: winners {winners}"
            stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(stored).hexdigest() == digests[winners[0]], f"trial {trial}: body is not the winner's"


def test_up_is_idempotent_and_down_stops_exactly_what_up_started(
    private_env: Callable[[list[str]], LocalEnv],
) -> None:
    env = private_env(["solo"])
    pids = {n: c.pid for n, c in env.components.items()}
    same = up(["solo"], root=env.root)
    assert {n: c.pid for n, c in same.components.items()} == pids, "a second up restarted running servers"
    same.down()
    for pid in pids.values():
        assert pid is not None
        assert not pid_alive(pid), f"pid {pid} still runs after down"
    assert not env.root.exists()


def test_a_port_in_use_gives_a_clear_error(private_env: Callable[[list[str]], LocalEnv]) -> None:
    env = private_env([])
    env.stop("s3")
    port = env.components["s3"].port
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(StartError, match=f"127.0.0.1:{port} is already in use"):
            env.start("s3")


def test_a_server_dying_at_start_reports_its_log_tail(private_env: Callable[[list[str]], LocalEnv]) -> None:
    env = private_env([])
    env.stop("s3")
    comp = env.components["s3"]
    comp.argv = [*comp.argv[:-1], "/nonexistent/ramen-p2p/data"]  # the backend root must exist
    with pytest.raises(StartError) as e:
        env.start("s3")
    assert "exited with code" in str(e.value)
    assert "last lines of" in str(e.value)
