"""VolSync without a hub: the derived PSK, the published PVC list, and the Secondary's rdSpec."""

from __future__ import annotations

import base64
import copy
import dataclasses
from typing import Any

import pytest

from reconciler.config import parse_config
from reconciler.controllers.volsync import NOT_CONFIGURED, VolSyncKeys
from reconciler.install import InstallOptions, cluster_rules, namespace_rules, p2p_config
from reconciler.kube.errors import ApiError
from reconciler.plan.drcontrol import plan
from reconciler.plan.inputs import VRGView
from reconciler.plan.volsync import PSK_PREFIX, derive_psk, secret_name
from reconciler.s3peer import pvcs
from reconciler.s3peer.errors import CorruptObject
from reconciler.s3peer.models import ClusterStatus, Role
from reconciler.s3peer.profiles import SecretRef
from tests.unit.test_plan_drcontrol import cond, drc, inp, state, vrg, with_co

SEED = b"s" * 32

# A VolSync PVC as Ramen's VRG reports it in status.protectedPVCs (with what an rdSpec must not carry).
RAMEN_PVC: dict[str, Any] = {
    "name": "data", "namespace": "ns", "protectedByVolSync": True, "storageClassName": "vs-class",
    "csiProvisioner": "vs.driver", "storageID": {"id": ""}, "replicationID": {"id": ""},
    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "labels": {"app": "busybox"},
    "conditions": [{"type": "DataReady", "status": "True"}], "lastSyncTime": "2026-11-25T12:00:00Z",
    "lastSyncDuration": "1s", "lastSyncBytes": 10,
}
VOLREP_PVC = {"name": "db", "namespace": "ns", "storageClassName": "rbd", "accessModes": ["ReadWriteOnce"]}


def primary_vrg_with_pvcs(*entries: dict[str, Any]) -> VRGView:
    v = copy.deepcopy(dict(vrg("primary", "Primary").live or {}))
    v["status"]["protectedPVCs"] = [copy.deepcopy(e) for e in entries]
    return VRGView(v)


# -- the PSK -------------------------------------------------------------------------------
def test_the_psk_is_deterministic_per_app_and_has_ramens_format() -> None:
    a = derive_psk(SEED, "ns", "app")
    assert a == derive_psk(SEED, "ns", "app")  # both clusters derive the same bytes
    assert a.startswith(PSK_PREFIX) and len(a) == len(PSK_PREFIX) + 128
    int(a[len(PSK_PREFIX):], 16)  # hex, 64 bytes as Ramen's hub makes it
    others = {derive_psk(SEED, "ns", "app2"), derive_psk(SEED, "ns2", "app"), derive_psk(b"t" * 32, "ns", "app")}
    assert a not in others and len(others) == 3
    assert SEED.hex() not in a


def test_a_short_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        derive_psk(b"short", "ns", "app")


def test_the_secret_name_is_the_one_ramen_looks_up() -> None:
    assert secret_name("app") == "app-vs-secret"


def _keys(data: dict[str, str] | Exception) -> VolSyncKeys:
    def read(ns: str, name: str) -> dict[str, Any]:
        assert (ns, name) == ("ramen-system", "seed")
        if isinstance(data, Exception):
            raise data
        return {"data": data}
    return VolSyncKeys(SecretRef("seed", "ramen-system"), read, clock=lambda: 0.0)


@pytest.mark.parametrize(("data", "problem"), [
    ({"seed": base64.b64encode(SEED).decode()}, ""),
    ({}, "has no key seed"),
    ({"seed": "!!"}, "is not base64"),
    ({"seed": base64.b64encode(b"x" * 8).decode()}, "holds 8 bytes"),
    (ApiError(404), "not found"),
    (ApiError(403), "HTTP 403"),
])
def test_the_seed_secret_is_checked_and_problems_are_named_without_the_value(
        data: dict[str, str] | Exception, problem: str) -> None:
    keys = _keys(data)
    got = keys.problem()
    assert (problem in got) if problem else got == ""
    if not problem:
        assert keys.psk("ns", "app") == derive_psk(SEED, "ns", "app")
    assert base64.b64encode(SEED).decode() not in got


def test_no_seed_configured_is_a_problem() -> None:
    assert VolSyncKeys().problem() == NOT_CONFIGURED


# -- configuration and install -------------------------------------------------------------
RAMEN_CM = {"data": {"ramen_manager_config.yaml": "s3StoreProfiles: [{s3ProfileName: p, s3Bucket: b, "
                     "s3CompatibleEndpoint: 'http://s3', s3Region: r, s3SecretRef: {name: s}}]"}}


def test_the_p2p_config_names_the_seed_secret() -> None:
    cfg = parse_config(RAMEN_CM, {"data": {"p2p.yaml": "volSyncSeedSecretRef: {name: volsync-seed}"}}, "rs")
    assert cfg.volsync_seed == SecretRef("volsync-seed", "rs")
    assert parse_config(RAMEN_CM, {"data": {"p2p.yaml": "{}"}}, "rs").volsync_seed is None


def test_install_adds_the_seed_and_the_secret_rules_only_when_asked() -> None:
    plain = InstallOptions("east", "west", "http://s3")
    seeded = dataclasses.replace(plain, volsync_seed_secret_name="volsync-seed")
    assert "volSyncSeedSecretRef" not in p2p_config(plain)
    assert p2p_config(seeded)["volSyncSeedSecretRef"] == {"name": "volsync-seed", "namespace": "ramen-system"}
    assert not any("secrets" in r.resources for r in cluster_rules(plain))
    (rule,) = [r for r in cluster_rules(seeded) if "secrets" in r.resources]
    assert set(rule.verbs) == {"get", "create", "patch"}
    assert "volsync-seed" in next(r for r in namespace_rules(seeded) if "secrets" in r.resources).resource_names


# -- the published PVC list ----------------------------------------------------------------
def test_the_published_list_keeps_volsync_pvcs_without_status() -> None:
    (got,) = pvcs.from_vrg_status([RAMEN_PVC, VOLREP_PVC])
    assert got["name"] == "data" and got["resources"] == {"requests": {"storage": "1Gi"}}
    assert not {"conditions", "lastSyncTime", "lastSyncDuration", "lastSyncBytes"} & set(got)
    assert got["storageID"] == {"id": ""}  # as Ramen serialises it, so its updates do not fight ours
    assert pvcs.parse([got]) == [got]


@pytest.mark.parametrize("bad", [
    "not a list",
    [{"name": "data", "namespace": "ns"}],  # not VolSync
    [{"name": "Data!", "namespace": "ns", "protectedByVolSync": True}],
    [{"name": "data", "namespace": "ns", "protectedByVolSync": True, "evil": 1}],
    [{"name": "data", "namespace": "ns", "protectedByVolSync": True, "accessModes": ["All"]}],
    [{"name": "data", "namespace": "ns", "protectedByVolSync": True, "resources": {"requests": {"s": "lots"}}}],
    [{"name": "data", "namespace": "ns", "protectedByVolSync": True, "labels": {"a": 1}}],
    [{"name": "data", "namespace": "ns", "protectedByVolSync": True, "annotations": {"a": "x" * 20000}}],
    [{"name": "data", "namespace": "ns", "protectedByVolSync": True}] * 2,
    [{"name": f"p{i}", "namespace": "ns", "protectedByVolSync": True} for i in range(pvcs.MAX_PVCS + 1)],
])
def test_a_hostile_list_makes_the_cluster_status_corrupt(bad: Any) -> None:
    body = {"role": "primary", "observedGeneration": 1, "details": {pvcs.DETAILS_KEY: bad}}
    with pytest.raises(CorruptObject):
        ClusterStatus.from_body(body, "k")


# -- the planner ---------------------------------------------------------------------------
def peer_primary(gen: int, pvc_list: list[dict[str, Any]] | None) -> ClusterStatus:
    details: dict[str, Any] = {"vrgState": "Primary", "vrgHealthy": True}
    if pvc_list is not None:
        details[pvcs.DETAILS_KEY] = pvc_list
    return ClusterStatus(Role.PRIMARY, gen, details)


PUBLISHED = pvcs.from_vrg_status([RAMEN_PVC])


def test_the_primary_publishes_its_volsync_pvcs() -> None:
    p = plan(inp("east", drc(volsync=True), primary_vrg_with_pvcs(RAMEN_PVC, VOLREP_PVC), state("east", 1)))
    assert p.publish is not None and p.publish.volsync_pvcs == PUBLISHED
    assert p.volsync_secret == "app-vs-secret"
    assert cond(p, "VolSyncReady")["status"] == "True"


def test_a_primary_whose_vrg_is_not_ready_publishes_no_list() -> None:
    unready = copy.deepcopy(dict(primary_vrg_with_pvcs(RAMEN_PVC).live or {}))
    unready["status"]["state"] = "Unknown"  # Ramen while a PVC joins: the list may be incomplete
    p = plan(inp("east", drc(volsync=True), VRGView(unready), state("east", 1)))
    assert p.publish is not None and p.publish.role == Role.PRIMARY and p.publish.volsync_pvcs is None


def test_the_secondary_builds_its_rd_spec_from_the_primarys_list() -> None:
    co = with_co(state("east", 2, "Failover"), peer_status=peer_primary(2, PUBLISHED))
    p = plan(inp("west", drc(volsync=True), vrg("secondary", "Secondary"), co))
    assert p.vrg is not None
    assert p.vrg["spec"]["volSync"]["rdSpec"] == [{"protectedPVC": PUBLISHED[0]}]
    assert p.vrg["spec"]["volSync"]["disabled"] is False  # the DRControl's own settings stay
    assert p.vrg["spec"]["replicationState"] == "secondary"


def test_a_secondary_keeps_its_rd_spec_when_the_primarys_report_is_for_another_generation() -> None:
    live = copy.deepcopy(dict(vrg("secondary", "Secondary").live or {}))
    live["spec"]["volSync"] = {"rdSpec": [{"protectedPVC": {"name": "old", "namespace": "ns",
                                                             "protectedByVolSync": True}}]}
    for peer in (peer_primary(1, PUBLISHED), peer_primary(2, None), None):
        co = with_co(state("east", 2, "Failover"), peer_status=peer)
        p = plan(inp("west", drc(volsync=True), VRGView(live), co))
        assert p.vrg is not None and p.vrg["spec"]["volSync"]["rdSpec"] == live["spec"]["volSync"]["rdSpec"]


def test_an_empty_list_from_the_primary_removes_the_rd_spec() -> None:
    live = copy.deepcopy(dict(vrg("secondary", "Secondary").live or {}))
    live["spec"]["volSync"] = {"rdSpec": [{"protectedPVC": PUBLISHED[0]}]}
    co = with_co(state("east", 2, "Failover"), peer_status=peer_primary(2, []))
    p = plan(inp("west", drc(volsync=True), VRGView(live), co))
    assert p.vrg is not None and p.vrg["spec"]["volSync"].get("rdSpec") is None  # None: removed by the merge patch


def test_a_promoted_vrg_keeps_its_rd_spec_until_ready_then_drops_it() -> None:
    rds = [{"protectedPVC": PUBLISHED[0]}]
    promoting = copy.deepcopy(dict(vrg("primary", "Secondary", data_ready=False).live or {}))
    promoting["spec"]["volSync"] = {"rdSpec": rds}
    p = plan(inp("west", drc(volsync=True), VRGView(promoting), state("west", 2, "Relocate")))
    assert p.vrg is not None and p.vrg["spec"]["volSync"]["rdSpec"] == rds  # Ramen restores the PVCs from it
    ready = copy.deepcopy(dict(vrg("primary", "Primary").live or {}))
    ready["spec"]["volSync"] = {"rdSpec": rds}
    p = plan(inp("west", drc(volsync=True), VRGView(ready), state("west", 2, "Relocate")))
    assert p.vrg is not None and p.vrg["spec"]["volSync"].get("rdSpec") is None  # None: removed by the merge patch


def test_volsync_without_a_seed_says_so_and_writes_no_secret() -> None:
    i = dataclasses.replace(inp("east", drc(volsync=True), primary_vrg_with_pvcs(RAMEN_PVC), state("east", 1)),
                            volsync_seed_problem=NOT_CONFIGURED)
    p = plan(i)
    c = cond(p, "VolSyncReady")
    assert c["status"] == "False" and c["reason"] == "VolSyncSeedMissing" and "volSyncSeedSecretRef" in c["message"]
    assert p.volsync_secret is None
    assert cond(p, "ReadyForApplication")["status"] == "True"  # a condition, not a stop


def test_no_volsync_no_secret_and_no_condition() -> None:
    i = dataclasses.replace(inp("east", drc(), vrg("primary", "Primary"), state("east", 1)),
                            volsync_seed_problem=NOT_CONFIGURED)
    p = plan(i)
    assert p.volsync_secret is None
    assert all(c["type"] != "VolSyncReady" for c in p.status["conditions"])
    assert p.publish is not None and p.publish.volsync_pvcs is None


def test_a_list_too_large_to_publish_is_a_condition_on_the_primary() -> None:
    many = [{**RAMEN_PVC, "name": f"p{i}"} for i in range(pvcs.MAX_PVCS + 1)]
    p = plan(inp("east", drc(volsync=True), primary_vrg_with_pvcs(*many), state("east", 1)))
    assert p.publish is not None and p.publish.volsync_pvcs is None
    c = cond(p, "VolSyncReady")
    assert c["status"] == "False" and c["reason"] == "VolSyncPVCsTooLarge"


# -- the controller's edge -----------------------------------------------------------------
class FakeSecrets:
    """Secrets by (namespace, name), with the calls a KubeClient would get; `fail` makes writes fail."""

    def __init__(self, fail: int | None = None) -> None:
        self.objs: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        self.fail = fail

    def get(self, rt: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append("get")
        if (namespace or "", name) not in self.objs:
            raise ApiError(404, "NotFound")
        return copy.deepcopy(self.objs[(namespace or "", name)])

    def create(self, rt: Any, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self.calls.append("create")
        if self.fail:
            raise ApiError(self.fail, "Forbidden")
        self.objs[(namespace or "", obj["metadata"]["name"])] = copy.deepcopy(obj)
        return obj

    def merge_patch(self, rt: Any, name: str, namespace: str | None, patch: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("patch")
        obj = self.objs[(namespace or "", name)]
        obj["data"] = {**obj.get("data", {}), **patch["data"]}
        return obj


def test_the_psk_secret_is_created_then_left_alone_then_repaired() -> None:
    from reconciler.controllers.volsync import ensure_psk_secret

    kube = FakeSecrets()
    psk = derive_psk(SEED, "ns", "app")
    assert ensure_psk_secret(kube, "ns", "app-vs-secret", psk)  # type: ignore[arg-type]
    secret = kube.objs[("ns", "app-vs-secret")]
    assert base64.b64decode(secret["data"]["psk.txt"]).decode() == psk
    secret["metadata"]["labels"]["ramendr.openshift.io/created-by-ramen"] = "true"  # Ramen's additions stay
    assert not ensure_psk_secret(kube, "ns", "app-vs-secret", psk)  # type: ignore[arg-type]
    secret["data"]["psk.txt"] = base64.b64encode(b"volsyncramen:00").decode()
    assert ensure_psk_secret(kube, "ns", "app-vs-secret", psk)  # type: ignore[arg-type]
    assert base64.b64decode(kube.objs[("ns", "app-vs-secret")]["data"]["psk.txt"]).decode() == psk
    assert kube.objs[("ns", "app-vs-secret")]["metadata"]["labels"]["ramendr.openshift.io/created-by-ramen"]
    assert kube.calls == ["get", "create", "get", "get", "patch"]


def _controller(kube: FakeSecrets, clock: list[float]) -> Any:
    from types import SimpleNamespace

    from reconciler.controllers.drcontrol import DRControlController

    applier = SimpleNamespace(apply_status=lambda rt, live, status: SimpleNamespace(obj={**live, "status": status}))
    return DRControlController("east", kube, None, applier, None, None,  # type: ignore[arg-type]
                               volsync_keys=_keys({"seed": base64.b64encode(SEED).decode()}),
                               now=lambda: "2026-11-25T12:00:00Z", monotonic=lambda: clock[0])


def test_a_failed_secret_write_is_a_condition_without_the_key() -> None:
    from reconciler.s3peer.keys import AppKey

    kube = FakeSecrets(fail=403)
    ctl = _controller(kube, [0.0])
    p = plan(inp("east", drc(volsync=True), primary_vrg_with_pvcs(RAMEN_PVC), state("east", 1)))
    written = ctl._ensure_psk_secret(AppKey("ns", "app"), p, {"metadata": {"name": "app"}, "status": {}})
    c = next(c for c in written["status"]["conditions"] if c["type"] == "VolSyncReady")
    assert (c["status"], c["reason"]) == ("False", "SecretWriteFailed") and "403" in c["message"]
    assert derive_psk(SEED, "ns", "app")[len(PSK_PREFIX):] not in str(written)


def test_the_secret_is_checked_once_per_interval_not_per_reconcile() -> None:
    from reconciler.controllers.drcontrol import PSK_RECHECK
    from reconciler.s3peer.keys import AppKey

    kube, clock = FakeSecrets(), [0.0]
    ctl = _controller(kube, clock)
    p = plan(inp("east", drc(volsync=True), primary_vrg_with_pvcs(RAMEN_PVC), state("east", 1)))
    for _ in range(3):
        ctl._ensure_psk_secret(AppKey("ns", "app"), p, {"metadata": {"name": "app"}})
    assert kube.calls == ["get", "create"]
    clock[0] = PSK_RECHECK + 1
    ctl._ensure_psk_secret(AppKey("ns", "app"), p, {"metadata": {"name": "app"}})
    assert kube.calls == ["get", "create", "get"]
