"""Shared fixtures: the real local environment, brought up once per test run.

Tests that take `localenv`, `east`, `west`, `s3` or `namespace` talk to real
kube-apiservers and a real S3 server. If the environment cannot be built or
started, those tests error (they are never silently skipped).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.harness import force_delete_drcontrols
from e2e.localenv import LocalEnv, up
from e2e.localenv.clients import Cluster, kube_cluster, s3_client, s3_config

CLUSTERS = ["east", "west"]


@pytest.fixture(scope="session")
def localenv() -> Iterator[LocalEnv]:
    env = LocalEnv.load()
    reuse = env.healthy() and all(c in env.clusters for c in CLUSTERS)
    if not reuse:
        env = up(CLUSTERS)
    yield env
    # An environment that was running before the tests is left running.
    if not reuse and os.environ.get("RAMEN_P2P_KEEP_ENV") != "1":
        env.down()


@pytest.fixture(scope="session")
def east(localenv: LocalEnv) -> Cluster:
    return kube_cluster("east", localenv.kubeconfig("east"))


@pytest.fixture(scope="session")
def west(localenv: LocalEnv) -> Cluster:
    return kube_cluster("west", localenv.kubeconfig("west"))


@pytest.fixture(scope="session")
def clusters(east: Cluster, west: Cluster) -> dict[str, Cluster]:
    return {"east": east, "west": west}


@pytest.fixture(scope="session")
def s3_settings(localenv: LocalEnv) -> dict[str, str]:
    return s3_config(localenv.s3_config_file())


@pytest.fixture(scope="session")
def s3(s3_settings: dict[str, str]) -> Any:
    return s3_client(s3_settings)


def _short(nodeid: str) -> str:
    name = nodeid.split("::")[-1].lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:30].strip("-")


@pytest.fixture
def namespace(request: pytest.FixtureRequest, clusters: dict[str, Cluster]) -> Iterator[str]:
    """A fresh namespace of the same name on both clusters."""
    name = f"t-{_short(request.node.nodeid)}-{secrets.token_hex(3)}"
    for c in clusters.values():
        c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    for c in clusters.values():
        # No kube-controller-manager: the namespace stays Terminating with whatever it holds, so
        # DRControls and VRGs (and their finalizers) are removed explicitly; operators of later
        # tests never see them.
        force_delete_drcontrols(c, name)
        try:
            c.core.delete_namespace(name)
        except ApiException as e:  # pragma: no cover - best effort cleanup
            if e.status != 404:
                raise


@pytest.fixture
def private_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalEnv]]:
    """Make an environment of one's own, for tests that stop or restart servers.

    `private_env([])` starts only an S3 server; `private_env(["solo"])` adds a
    cluster; `s3_servers=3` runs three S3 servers (dr-state over a quorum). Everything it
    started is stopped when the test ends, so the shared environment never sees the disruption.
    """
    made: list[LocalEnv] = []

    def make(clusters: list[str], s3_servers: int = 1) -> LocalEnv:
        env = up(clusters, root=tmp_path_factory.mktemp("privenv"), s3_servers=s3_servers)
        made.append(env)
        return env

    yield make
    for env in made:
        env.down()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A fresh S3 key prefix, so tests never see each other's objects."""
    return f"t/{_short(request.node.nodeid)}-{secrets.token_hex(3)}/"
