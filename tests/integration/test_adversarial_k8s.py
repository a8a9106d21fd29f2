"""Kubernetes objects the API server must refuse, with a reason naming the field (the CRD schemas)."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from e2e import harness
from e2e.crdinstall import OUR_CRDS, install_crds
from e2e.localenv.clients import Cluster

pytestmark = pytest.mark.realenv
G, V = harness.GROUP, harness.VERSION


def _drc(**spec: Any) -> dict[str, Any]:
    d = harness.drcontrol("default", f"bad-{secrets.token_hex(3)}")
    d["spec"].update(spec)
    return d


def _policy(**spec: Any) -> dict[str, Any]:
    p = copy.deepcopy(harness.load_example("drpolicy.yaml"))
    p["metadata"] = {"name": f"bad-{secrets.token_hex(3)}"}
    p["spec"].update(spec)
    return p


def _cluster(**spec: Any) -> dict[str, Any]:
    c = copy.deepcopy(harness.load_example("drcluster-west.yaml"))
    c["metadata"] = {"name": f"bad-{secrets.token_hex(3)}"}
    c["spec"].update(spec)
    return c


# (id, plural, object, words of the refusal)
REFUSED: list[tuple[str, str, Callable[[], dict[str, Any]], str]] = [
    ("preferred-not-a-label", "drcontrols", lambda: _drc(preferredCluster="Mallory!"), "preferredCluster"),
    ("preferred-too-long", "drcontrols", lambda: _drc(preferredCluster="m" * 64), "preferredCluster"),
    ("target-not-a-label", "drcontrols", lambda: _drc(action="Failover", targetCluster="../x"), "targetCluster"),
    ("unknown-action", "drcontrols", lambda: _drc(action="Explode"), "action"),
    ("three-clusters", "drpolicies", lambda: _policy(drClusters=["east", "west", "north"]), "drClusters"),
    ("same-cluster-twice", "drpolicies", lambda: _policy(drClusters=["east", "east"]), "drClusters"),
    ("bad-interval", "drpolicies", lambda: _policy(schedulingInterval="5x"), "schedulingInterval"),
    ("bad-fence", "drclusters", lambda: _cluster(clusterFence="Maybe"), "clusterFence"),
    ("bad-cidr", "drclusters", lambda: _cluster(cidrs=["not-a-cidr"]), "cidrs"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[r[0] for r in REFUSED])
def test_nonsense_objects_are_refused_with_the_field_named(east: Cluster, case: tuple[str, str, Any, str]) -> None:
    install_crds(east.api, OUR_CRDS)
    _, plural, make, field = case
    obj = make()
    with pytest.raises(ApiException) as e:
        if plural == "drcontrols":
            east.custom.create_namespaced_custom_object(G, V, "default", plural, obj)
        else:
            east.custom.create_cluster_custom_object(G, V, plural, obj)
    assert e.value.status == 422 and field in str(e.value.body)
