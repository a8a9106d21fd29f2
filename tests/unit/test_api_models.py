"""Typed API models: dict round trips, preserved unknown fields, errors naming the field, conditions."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api import (
    DRCONTROL,
    DRPOLICY,
    NETWORKFENCE,
    VRG,
    Condition,
    ConditionType,
    DRCluster,
    DRControl,
    DRPolicy,
    ModelError,
    NetworkFence,
    Reason,
    VolumeReplicationGroup,
    drcluster,
    drcontrol,
    format_time,
    get_condition,
    is_condition_true,
    networkfence,
    parse_time,
    remove_condition,
    set_condition,
    vrg,
)
from reconciler.api.drcontrol import ACTION_NONE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# --- strategies for valid objects, as the API server would hand them to us ------------------------

names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,12}[a-z0-9])?", fullmatch=True)
words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    format_time
)
generations = st.integers(min_value=0, max_value=2**53)
reasons = st.from_regex(r"[A-Z][A-Za-z0-9]{0,15}", fullmatch=True)


def optional(d: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=d)


label_selectors = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(names, names, max_size=3),
        "matchExpressions": st.lists(
            st.fixed_dictionaries(
                {"key": names, "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"])},
                optional={"values": st.lists(names, max_size=3)},
            ),
            max_size=2,
        ),
    },
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
passthrough = st.dictionaries(names, json_values, max_size=3)


@st.composite
def conditions(draw: st.DrawFn) -> list[dict[str, Any]]:
    types = draw(st.lists(st.from_regex(r"[A-Z][A-Za-z]{0,15}", fullmatch=True), min_size=1, max_size=4, unique=True))
    out = []
    for t in types:
        c: dict[str, Any] = {
            "type": t,
            "status": draw(st.sampled_from(["True", "False", "Unknown"])),
            "lastTransitionTime": draw(times),
            "reason": draw(reasons),
            "message": draw(words),
        }
        if draw(st.booleans()):
            c["observedGeneration"] = draw(generations)
        out.append(c)
    return out


metadata = optional(
    {
        "name": names,
        "namespace": names,
        "uid": names,
        "resourceVersion": st.integers(min_value=1).map(str),
        "generation": generations,
        "creationTimestamp": times,
        "labels": st.dictionaries(names, names, max_size=2),
        "annotations": st.dictionaries(names, words, max_size=2),
        "finalizers": st.lists(names, max_size=2),
        "managedFields": st.lists(passthrough, max_size=1),
    }
)


def kind_object(api_version: str, kind: str, spec: st.SearchStrategy[Any], status: st.SearchStrategy[Any]) -> Any:
    return st.builds(
        lambda m, sp, stt: (
            {"apiVersion": api_version, "kind": kind, "metadata": m, "spec": sp} | ({"status": stt} if stt else {})
        ),
        metadata,
        spec,
        status,
    )


drcontrol_specs = st.builds(
    lambda base, action: base | action,
    st.fixed_dictionaries(
        {
            "drPolicyRef": st.fixed_dictionaries({"name": names}),
            "vrgSpec": st.fixed_dictionaries(
                {
                    "replicationType": st.sampled_from(["async", "sync"]),
                    "pvcSelector": label_selectors,
                    "s3Profiles": st.lists(names, min_size=1, max_size=3, unique=True),
                },
                optional={"kubeObjectProtection": passthrough, "volSync": passthrough},
            ),
        },
        optional={"preferredCluster": names},
    ),
    st.one_of(
        st.just({}),
        st.just({"action": ""}),
        st.fixed_dictionaries({"action": st.sampled_from(["Failover", "Relocate"]), "targetCluster": names}),
    ),
)
drcontrol_statuses = optional(
    {
        "observedGeneration": generations,
        "phase": st.sampled_from(["Initializing", "Protecting", "FailingOver", "Relocating", "Idle"]),
        "currentPrimary": names,
        "generation": generations,
        "peerStatus": optional(
            {
                "clusterName": names,
                "role": st.sampled_from(["primary", "secondary", "secondary-ready"]),
                "vrgHealthy": st.booleans(),
                "lastSeen": times,
                "stale": st.booleans(),
            }
        ),
        "lastAction": optional(
            {
                "action": st.sampled_from(["Failover", "Relocate"]),
                "targetCluster": names,
                "specGeneration": generations,
                "startedAt": times,
                "completedAt": times,
                "result": st.sampled_from(["InProgress", "Succeeded", "Failed"]),
                "message": words,
            }
        ),
        "conditions": conditions(),
    }
)

drpolicy_specs = st.fixed_dictionaries(
    {
        "drClusters": st.lists(names, min_size=2, max_size=2, unique=True),
        "schedulingInterval": st.one_of(st.just(""), st.from_regex(r"[1-9][0-9]{0,3}[mhd]", fullmatch=True)),
        "s3CoordinationProfile": names,
    },
    optional={
        "replicationClassSelector": label_selectors,
        "volumeSnapshotClassSelector": label_selectors,
        "autoFailover": st.one_of(
            st.fixed_dictionaries({"enabled": st.just(False)}, optional={"after": st.just("5m")}),
            st.fixed_dictionaries({"enabled": st.just(True), "after": st.sampled_from(["30s", "5m", "1h30m"])}),
        ),
    },
)
drpolicy_statuses = optional({"observedGeneration": generations, "conditions": conditions()})

cidrs = st.one_of(
    st.ip_addresses(v=4).map(lambda a: f"{a}/{int(a) % 33}"),
    st.ip_addresses(v=6).map(lambda a: f"{a}/64"),
)
drcluster_specs = st.builds(
    lambda base, fence: base | fence,
    st.fixed_dictionaries(
        {"clusterName": names, "s3ProfileName": names},
        optional={
            "region": names,
            "peerEndpoint": st.fixed_dictionaries(
                {
                    "apiServer": names.map(lambda n: f"https://{n}.example.com:6443"),
                    "secretRef": st.fixed_dictionaries({"name": names, "namespace": names}),
                }
            ),
        },
    ),
    st.one_of(
        optional({"clusterFence": st.sampled_from(["Unfenced", "ManuallyUnfenced"]), "cidrs": st.lists(cidrs)}),
        st.fixed_dictionaries(
            {"clusterFence": st.sampled_from(["Fenced", "ManuallyFenced"]), "cidrs": st.lists(cidrs, min_size=1)}
        ),
    ),
)
drcluster_statuses = optional(
    {
        "observedGeneration": generations,
        "phase": st.sampled_from(["Available", "Fenced", "Unfenced"]),
        "peerStorageClasses": st.lists(
            st.fixed_dictionaries(
                {"name": names, "provisioner": names}, optional={"storageID": names, "replicationID": names}
            ),
            max_size=2,
        ),
        "conditions": conditions(),
    }
)

vrg_specs = st.fixed_dictionaries(
    {
        "pvcSelector": label_selectors,
        "replicationState": st.sampled_from(["primary", "secondary"]),
        "s3Profiles": st.lists(names, max_size=2),
    },
    optional={
        "async": st.fixed_dictionaries(
            {"schedulingInterval": st.sampled_from(["1m", "5m", "1h", "1d"])},
            optional={
                "replicationClassSelector": label_selectors,
                "volumeSnapshotClassSelector": label_selectors,
                "peerClasses": st.lists(passthrough, max_size=1),
            },
        ),
        "sync": passthrough,
        "volSync": passthrough,
        "action": st.sampled_from(["Failover", "Relocate"]),
        "prepareForFinalSync": st.booleans(),
        "runFinalSync": st.booleans(),
        "kubeObjectProtection": passthrough,
        "protectedNamespaces": st.lists(names, max_size=2),
    },
)
vrg_statuses = optional(
    {
        "state": st.sampled_from(["Primary", "Secondary", "Unknown"]),
        "observedGeneration": generations,
        "conditions": conditions(),
        "lastGroupSyncTime": times,
        "lastUpdateTime": times,
        "prepareForFinalSyncComplete": st.booleans(),
        "finalSyncComplete": st.booleans(),
        "protectedPVCs": st.lists(passthrough, max_size=2),
    }
)

networkfence_specs = st.builds(
    lambda base, how: base | how,
    st.fixed_dictionaries(
        {"fenceState": st.sampled_from(["Fenced", "Unfenced"]), "cidrs": st.lists(cidrs, max_size=3)},
        optional={"parameters": st.dictionaries(names, words, max_size=2)},
    ),
    st.one_of(
        st.fixed_dictionaries({"networkFenceClassName": names}),
        st.fixed_dictionaries(
            {"driver": names, "secret": optional({"name": names, "namespace": names})},
            optional={"networkFenceClassName": names},
        ),
    ),
)
networkfence_statuses = optional(
    {"result": st.sampled_from(["Succeeded", "Failed"]), "message": words, "conditions": conditions()}
)

KINDS: list[tuple[type[Any], Any]] = [
    (DRControl, kind_object(DRCONTROL.api_version, "DRControl", drcontrol_specs, drcontrol_statuses)),
    (DRPolicy, kind_object(DRPOLICY.api_version, "DRPolicy", drpolicy_specs, drpolicy_statuses)),
    (DRCluster, kind_object(DRPOLICY.api_version, "DRCluster", drcluster_specs, drcluster_statuses)),
    (VolumeReplicationGroup, kind_object(VRG.api_version, "VolumeReplicationGroup", vrg_specs, vrg_statuses)),
    (NetworkFence, kind_object(NETWORKFENCE.api_version, "NetworkFence", networkfence_specs, networkfence_statuses)),
]


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "objects"), KINDS, ids=[k[0].__name__ for k in KINDS])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_is_exact(model: Any, objects: Any, data: st.DataObject) -> None:
    d = data.draw(objects)
    original = copy.deepcopy(d)
    obj = model.from_dict(d)
    assert obj.to_dict() == original
    assert d == original, "from_dict must not modify its input"
    assert model.from_dict(obj.to_dict()) == obj


@pytest.mark.parametrize("name", ["drpolicy", "drcluster-east", "drcluster-west", "drcontrol"])
def test_examples_round_trip(name: str) -> None:
    d = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    model: Any = {"DRPolicy": DRPolicy, "DRCluster": DRCluster, "DRControl": DRControl}[d["kind"]]
    assert model.from_dict(d).to_dict() == d


def test_to_dict_omits_unset_optionals_and_uses_camel_case() -> None:
    d = yaml.safe_load((EXAMPLES / "drcontrol.yaml").read_text())
    del d["spec"]["action"]
    ctl = DRControl.from_dict(d)
    assert ctl.spec.action is None
    assert ctl.spec.requested_action == ACTION_NONE
    out = ctl.to_dict()
    assert "action" not in out["spec"] and "targetCluster" not in out["spec"]
    assert "status" not in out
    assert set(out["spec"]) == {"drPolicyRef", "preferredCluster", "vrgSpec"}
    assert set(out["spec"]["vrgSpec"]) == {"replicationType", "pvcSelector", "s3Profiles"}


def test_passthrough_fields_are_copies() -> None:
    d = yaml.safe_load((EXAMPLES / "drcontrol.yaml").read_text())
    d["spec"]["vrgSpec"]["volSync"] = {"disabled": True}
    ctl = DRControl.from_dict(d)
    d["spec"]["vrgSpec"]["volSync"]["disabled"] = False
    assert ctl.spec.vrg_spec.vol_sync == {"disabled": True}


def test_unknown_fields_survive_typed_edit() -> None:
    """Rewriting a live VRG's spec from the model must keep what a newer Ramen added."""
    live = {
        "apiVersion": "ramendr.openshift.io/v1alpha1",
        "kind": "VolumeReplicationGroup",
        "metadata": {"name": "app", "namespace": "ns", "managedFields": [{"manager": "ramen"}]},
        "spec": {
            "pvcSelector": {},
            "replicationState": "secondary",
            "s3Profiles": ["s3"],
            "dryRun": False,
            "async": {"schedulingInterval": "5m", "volumeGroupSnapshotClassSelector": {}},
        },
        "status": {"state": "Secondary", "rdInfo": [{"name": "rd"}]},
    }
    vrg = VolumeReplicationGroup.from_dict(live)
    vrg.spec.replication_state = "primary"
    out = vrg.to_dict()
    assert out["spec"]["replicationState"] == "primary"
    assert out["spec"]["dryRun"] is False
    assert out["spec"]["async"]["volumeGroupSnapshotClassSelector"] == {}
    assert out["status"]["rdInfo"] == [{"name": "rd"}]
    assert out["metadata"]["managedFields"] == [{"manager": "ramen"}]


def test_drpolicy_helpers() -> None:
    pol = DRPolicy.from_dict(yaml.safe_load((EXAMPLES / "drpolicy.yaml").read_text()))
    assert pol.spec.peer_of("east") == "west"
    assert pol.spec.peer_of("west") == "east"
    assert not pol.spec.synchronous
    with pytest.raises(ValueError, match="'north' is not one of"):
        pol.spec.peer_of("north")


# --- errors name the field --------------------------------------------------------------------


def _example(name: str) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return d


def _set(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(d)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return d


_DELETE = object()

INVALID: list[tuple[str, type[Any], str, Any, str]] = [
    # (example, model, field to change, new value, expected message)
    (
        "drcontrol",
        DRControl,
        "spec.vrgSpec.replicationType",
        "metro",
        "spec.vrgSpec.replicationType: must be one of async, sync",
    ),
    ("drcontrol", DRControl, "spec.action", "Teleport", 'spec.action: must be one of "", Failover, Relocate'),
    ("drcontrol", DRControl, "spec.action", "Failover", "spec.targetCluster: is required when spec.action is set"),
    ("drcontrol", DRControl, "spec.drPolicyRef", _DELETE, "spec.drPolicyRef: is required"),
    ("drcontrol", DRControl, "spec.drPolicyRef.name", "", "spec.drPolicyRef.name: must not be empty"),
    ("drcontrol", DRControl, "spec.vrgSpec.s3Profiles", [], "spec.vrgSpec.s3Profiles: must list at least one"),
    ("drcontrol", DRControl, "spec.vrgSpec.s3Profiles", ["a", "a"], "spec.vrgSpec.s3Profiles: must not contain dup"),
    ("drcontrol", DRControl, "spec.vrgSpec.s3Profiles", ["a", 3], "spec.vrgSpec.s3Profiles[1]: must be a string"),
    (
        "drcontrol",
        DRControl,
        "spec.vrgSpec.pvcSelector",
        {"matchExpressions": [{"key": "a", "operator": "Is"}]},
        "spec.vrgSpec.pvcSelector.matchExpressions[0].operator: must be one of In, NotIn, Exists, DoesNotExist",
    ),
    ("drcontrol", DRControl, "spec.preferredCluster", "East", "spec.preferredCluster: must match"),
    ("drcontrol", DRControl, "spec.vrgSpec.volSync", [], "spec.vrgSpec.volSync: must be an object, got array"),
    (
        "drcontrol",
        DRControl,
        "status",
        {"lastAction": {"specGeneration": "2"}},
        "status.lastAction.specGeneration: must be an integer, got string",
    ),
    (
        "drcontrol",
        DRControl,
        "status",
        {"peerStatus": {"lastSeen": "yesterday"}},
        "status.peerStatus.lastSeen: must be an RFC 3339 date-time",
    ),
    (
        "drcontrol",
        DRControl,
        "status",
        {"conditions": [{"type": "Ready", "status": "Yes"}]},
        "status.conditions[0].lastTransitionTime: is required",
    ),
    (
        "drcontrol",
        DRControl,
        "status",
        {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "Yes",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "reason": "X",
                    "message": "",
                }
            ]
        },
        "status.conditions[0].status: must be one of True, False, Unknown",
    ),
    ("drcontrol", DRControl, "kind", "DRPlacementControl", "kind: must be one of DRControl"),
    ("drpolicy", DRPolicy, "spec.drClusters", ["east"], "spec.drClusters: must list exactly 2 clusters, got 1"),
    ("drpolicy", DRPolicy, "spec.drClusters", ["east", "east"], "spec.drClusters: must name two different clusters"),
    ("drpolicy", DRPolicy, "spec.schedulingInterval", "5 minutes", "spec.schedulingInterval: must match"),
    ("drpolicy", DRPolicy, "spec.s3CoordinationProfile", _DELETE, "spec.s3CoordinationProfile: is required"),
    (
        "drpolicy",
        DRPolicy,
        "spec.autoFailover",
        {"enabled": True},
        "spec.autoFailover.after: is required when autoFailover is enabled",
    ),
    (
        "drpolicy",
        DRPolicy,
        "spec.autoFailover",
        {"enabled": "yes"},
        "spec.autoFailover.enabled: must be a boolean, got string",
    ),
    ("drcluster-east", DRCluster, "spec.clusterFence", "Walled", "spec.clusterFence: must be one of Unfenced, Fenced"),
    ("drcluster-east", DRCluster, "spec.cidrs", ["10.0.0.0"], "spec.cidrs[0]: must be a CIDR"),
    ("drcluster-east", DRCluster, "spec.cidrs", ["10.0.0.0/16", "300.1.1.1/8"], "spec.cidrs[1]: must be a CIDR"),
    ("drcluster-east", DRCluster, "spec.clusterName", "East_1", "spec.clusterName: must match"),
    ("drcluster-west", DRCluster, "spec.peerEndpoint.apiServer", "http://x", "spec.peerEndpoint.apiServer: must be"),
    (
        "drcluster-west",
        DRCluster,
        "spec.peerEndpoint.secretRef",
        {"name": "s"},
        "spec.peerEndpoint.secretRef.namespace: is required",
    ),
]


@pytest.mark.parametrize(
    ("example", "model", "path", "value", "message"), INVALID, ids=[f"{c[2]}={c[3]!r}" for c in INVALID]
)
def test_invalid_objects_name_the_field(example: str, model: Any, path: str, value: Any, message: str) -> None:
    d = _set(_example(example), path, value)
    with pytest.raises(ModelError) as err:
        model.from_dict(d)
    assert str(err.value).startswith(message)
    assert isinstance(err.value, ValueError)


def test_drcluster_fenced_needs_cidrs() -> None:
    d = _set(_set(_example("drcluster-east"), "spec.clusterFence", "Fenced"), "spec.cidrs", _DELETE)
    with pytest.raises(ModelError, match=r"^spec\.cidrs: must not be empty when spec\.clusterFence is Fenced"):
        DRCluster.from_dict(d)


def test_vrg_and_networkfence_errors() -> None:
    vrg = {"spec": {"pvcSelector": {}, "replicationState": "Primary", "s3Profiles": []}}
    with pytest.raises(ModelError, match=r"^spec\.replicationState: must be one of primary, secondary$"):
        VolumeReplicationGroup.from_dict(vrg)
    nf = {"spec": {"fenceState": "Fenced", "cidrs": ["10.0.0.0/8"]}}
    with pytest.raises(ModelError, match=r"^spec\.driver: one of driver or networkFenceClassName must be present"):
        NetworkFence.from_dict(nf)
    nf["spec"]["driver"] = "rbd.csi.ceph.com"
    with pytest.raises(ModelError, match=r"^spec\.secret: must be present when networkFenceClassName"):
        NetworkFence.from_dict(nf)
    with pytest.raises(ModelError, match=r"^<root>: must be an object, got array$"):
        NetworkFence.from_dict([])
    with pytest.raises(ModelError, match=r"^spec: is required$"):
        NetworkFence.from_dict({"metadata": {"name": "x"}})


@given(st.text(max_size=8).filter(lambda s: s not in ("async", "sync")))
def test_any_other_replication_type_is_rejected(value: str) -> None:
    d = _set(_example("drcontrol"), "spec.vrgSpec.replicationType", value)
    with pytest.raises(ModelError, match=r"^spec\.vrgSpec\.replicationType: must be one of async, sync$"):
        DRControl.from_dict(d)


# --- conditions -------------------------------------------------------------------------------

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_set_condition_adds_with_now() -> None:
    conds = set_condition(
        [], ConditionType.PEER_CONNECTED, True, Reason.PEER_HEARTBEAT_CURRENT, "ok", now=T0, observed_generation=3
    )
    assert [c.to_dict() for c in conds] == [
        {
            "type": "PeerConnected",
            "status": "True",
            "observedGeneration": 3,
            "lastTransitionTime": "2026-11-25T12:00:00Z",
            "reason": "PeerHeartbeatCurrent",
            "message": "ok",
        }
    ]


def test_set_condition_keeps_transition_time_when_status_unchanged() -> None:
    conds = set_condition([], ConditionType.VRG_HEALTHY, True, "A", "first", now=T0, observed_generation=1)
    conds = set_condition(conds, ConditionType.VRG_HEALTHY, "True", "B", "second", now=T1, observed_generation=2)
    c = get_condition(conds, ConditionType.VRG_HEALTHY)
    assert c is not None
    assert (c.reason, c.message, c.observed_generation) == ("B", "second", 2)
    assert c.last_transition_time == format_time(T0)


def test_set_condition_moves_transition_time_when_status_changes() -> None:
    conds = set_condition([], ConditionType.S3_REACHABLE, True, Reason.S3_REACHABLE, "", now=T0)
    conds = set_condition(conds, ConditionType.S3_REACHABLE, False, Reason.S3_UNREACHABLE, "timeout", now=T1)
    c = get_condition(conds, ConditionType.S3_REACHABLE)
    assert c is not None and c.status == "False" and c.last_transition_time == format_time(T1)


def test_flips_within_one_second_get_distinct_increasing_transition_times() -> None:
    # The stop acknowledgement names a withdrawal by its time: a later withdrawal in the same
    # second must not carry the time an earlier one was acknowledged with.
    conds = set_condition([], "ReadyForApplication", False, "A", "", now=T0)
    conds = set_condition(conds, "ReadyForApplication", True, "B", "", now=T0)
    conds = set_condition(conds, "ReadyForApplication", False, "C", "", now=T0)
    c = get_condition(conds, "ReadyForApplication")
    assert c is not None and c.last_transition_time == format_time(T0 + timedelta(seconds=2))
    later = get_condition(set_condition(conds, "ReadyForApplication", True, "D", "", now=T1), "ReadyForApplication")
    assert later is not None and later.last_transition_time == format_time(T1)


def test_set_condition_is_pure_and_keeps_order() -> None:
    base = set_condition([], "Ready", False, "A", "", now=T0)
    base = set_condition(base, "Stalled", False, "A", "", now=T0)
    before = copy.deepcopy(base)
    out = set_condition(base, "Ready", True, "B", "", now=T1)
    assert base == before
    assert [c.type for c in out] == ["Ready", "Stalled"]
    assert remove_condition(out, "Ready") == [out[1]]


def test_set_condition_rejects_bad_status_and_reason() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        set_condition([], "Ready", "Maybe", "A", "", now=T0)
    with pytest.raises(ValueError, match="reason must be CamelCase"):
        set_condition([], "Ready", True, "not ok", "", now=T0)
    with pytest.raises(ValueError, match="naive datetime"):
        set_condition([], "Ready", True, "A", "", now=datetime(2026, 1, 1))


def test_is_condition_true_respects_generation() -> None:
    conds = set_condition(
        [], ConditionType.READY_FOR_APPLICATION, True, Reason.DATA_READY, "", now=T0, observed_generation=4
    )
    assert is_condition_true(conds, ConditionType.READY_FOR_APPLICATION)
    assert is_condition_true(conds, ConditionType.READY_FOR_APPLICATION, generation=4)
    assert not is_condition_true(conds, ConditionType.READY_FOR_APPLICATION, generation=5)
    assert not is_condition_true(conds, ConditionType.READY)
    unknown = set_condition(conds, ConditionType.READY_FOR_APPLICATION, "Unknown", "A", "", now=T1)
    assert not is_condition_true(unknown, ConditionType.READY_FOR_APPLICATION)


@given(
    st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(["True", "False", "Unknown"])), max_size=12)
)
def test_set_condition_sequence_properties(steps: list[tuple[str, str]]) -> None:
    """One entry per type; lastTransitionTime equals the time of the last status change of that type."""
    conds: list[Condition] = []
    last_change: dict[str, datetime] = {}
    last_status: dict[str, str] = {}
    for i, (t, s) in enumerate(steps):
        now = T0 + timedelta(seconds=i)
        if last_status.get(t) != s:
            last_change[t] = now
        last_status[t] = s
        conds = set_condition(conds, t, s, "R", "", now=now)
    assert sorted(c.type for c in conds) == sorted(last_status)
    for c in conds:
        assert c.status == last_status[c.type]
        assert c.last_transition_time == format_time(last_change[c.type])


def test_time_helpers() -> None:
    assert format_time(datetime(2026, 2, 9, 13, 0, 0, 500, tzinfo=UTC)) == "2026-02-09T13:00:00Z"
    assert parse_time("2026-02-09T12:00:00Z") == datetime(2026, 2, 9, 12, tzinfo=UTC)
    assert parse_time("2026-02-09T14:00:00.25+02:00") == datetime(2026, 2, 9, 12, 0, 0, 250000, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        parse_time("2026-02-09 12:00")


def _schema(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_model_enums_match_crd_enums() -> None:
    """The models accept exactly the values the CRDs accept, so code and API server agree."""
    root = EXAMPLES.parent
    drc = _schema(root / "crds" / "ramendr.openshift.io_drcontrols.yaml")["properties"]["spec"]["properties"]
    assert tuple(drc["action"]["enum"]) == drcontrol.ACTIONS
    assert tuple(drc["vrgSpec"]["properties"]["replicationType"]["enum"]) == drcontrol.REPLICATION_TYPES
    drcl = _schema(root / "crds" / "ramendr.openshift.io_drclusters.yaml")["properties"]["spec"]["properties"]
    assert tuple(drcl["clusterFence"]["enum"]) == drcluster.CLUSTER_FENCE_STATES
    vrg_schema = _schema(root / "e2e" / "crds" / "ramendr.openshift.io_volumereplicationgroups.yaml")["properties"]
    assert tuple(vrg_schema["spec"]["properties"]["replicationState"]["enum"]) == vrg.REPLICATION_STATES
    assert tuple(vrg_schema["spec"]["properties"]["action"]["enum"]) == vrg.VRG_ACTIONS
    assert tuple(vrg_schema["status"]["properties"]["state"]["enum"]) == vrg.STATES
    nf = _schema(root / "e2e" / "crds" / "csiaddons.openshift.io_networkfences.yaml")["properties"]
    assert tuple(nf["spec"]["properties"]["fenceState"]["enum"]) == networkfence.FENCE_STATES
    assert tuple(nf["status"]["properties"]["result"]["enum"]) == networkfence.RESULTS
