"""The owned Flux Kustomization: present only where ReadyForApplication is True; a relocate waits for it to go."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reconciler.api.common import ModelError
from reconciler.api.drcontrol import DRControlSpec
from reconciler.plan.application import (
    OWNER_NAME_LABEL,
    OWNER_NAMESPACE_LABEL,
    REQUESTED_AT,
    SPEC_HASH,
    STOPPED_ANNOTATION,
    ApplicationView,
    desired_kustomization,
    differs,
    owned_by,
    stop_problem,
)
from reconciler.plan.drcontrol import Plan, Transition, plan
from tests.unit.test_plan_drcontrol import (
    PRIMARY_READY,
    SECONDARY_READY_VRG,
    cond,
    drc,
    inp,
    relocating,
    state,
    vrg,
    vrg_state,
)

SPEC: dict[str, Any] = {"interval": "10m", "path": "./app", "prune": True, "targetNamespace": "ns",
                        "sourceRef": {"kind": "Bucket", "name": "apps"}}
TEMPLATE: dict[str, Any] = {"name": "my-app", "namespace": "flux-system", "spec": SPEC}
GONE = ApplicationView(present=False)
THERE = ApplicationView(present=True)
PRUNING = ApplicationView(present=True, deleting=True)


def flux_drc(**kw: Any) -> dict[str, Any]:
    d = drc(**kw)
    d["spec"]["application"] = {"fluxKustomization": TEMPLATE}
    return d


def run(cluster: str, d: dict[str, Any], view: ApplicationView, **kw: Any) -> Plan:
    return plan(dataclasses.replace(inp(cluster, d, **kw), application=view))


def test_the_primary_that_is_ready_wants_the_kustomization_with_owner_labels_and_requested_at() -> None:
    p = run("east", flux_drc(), GONE, v=PRIMARY_READY, co=state("east", 1))
    assert cond(p, "ReadyForApplication")["status"] == "True"
    assert p.manages_application and p.kustomization is not None
    meta = p.kustomization["metadata"]
    assert (meta["name"], meta["namespace"]) == ("my-app", "flux-system")
    assert meta["labels"] == {OWNER_NAMESPACE_LABEL: "ns", OWNER_NAME_LABEL: "app"}
    assert meta["annotations"][REQUESTED_AT] == cond(p, "ReadyForApplication")["lastTransitionTime"]
    assert p.kustomization["spec"] == SPEC
    assert cond(p, "FluxKustomization")["reason"] == "Absent"
    assert p.requeue_after == 2.0, "a Kustomization on its way in is looked at again soon"


def test_the_secondary_wants_no_kustomization() -> None:
    p = run("west", flux_drc(), THERE, v=SECONDARY_READY_VRG, co=state("east", 1))
    assert p.manages_application and p.kustomization is None
    assert cond(p, "FluxKustomization")["status"] == "True"
    assert "deleting it" in cond(p, "FluxKustomization")["message"]


def test_a_primary_waiting_for_its_vrg_does_not_start_the_application() -> None:
    p = run("east", flux_drc(), GONE, v=vrg("primary", "Unknown", data_ready=False), co=state("east", 1))
    assert cond(p, "ReadyForApplication")["status"] == "False"
    assert p.kustomization is None


def test_without_a_template_nothing_is_managed() -> None:
    p = run("east", drc(), GONE, v=PRIMARY_READY, co=state("east", 1))
    assert not p.manages_application
    assert all(c["type"] != "FluxKustomization" for c in p.status["conditions"])


def test_frozen_roles_keep_the_kustomization_where_it_was() -> None:
    ready = run("east", flux_drc(), THERE, v=PRIMARY_READY, co=state("east", 1))
    d = flux_drc(status=ready.status)
    from reconciler.plan.inputs import Coordination, CoordinationError
    frozen = run("east", d, THERE, v=PRIMARY_READY,
                 co=Coordination(error=CoordinationError("S3Unreachable", "store down")))
    assert frozen.kustomization is not None, "an S3 outage must not prune a running application"


def test_relocate_source_deletes_the_kustomization_and_waits_before_demoting() -> None:
    d = flux_drc(action="Relocate", target="west")
    p1 = run("east", d, THERE, v=PRIMARY_READY, co=relocating())
    assert cond(p1, "ReadyForApplication")["status"] == "False"
    assert p1.kustomization is None, "the application must leave before the demotion"
    assert vrg_state(p1) == "primary"
    assert "Flux prunes the application" in cond(p1, "Reconciling")["message"]
    p2 = run("east", d, PRUNING, v=PRIMARY_READY, co=relocating())
    assert vrg_state(p2) == "primary" and "being deleted" in cond(p2, "Reconciling")["message"]
    p3 = run("east", d, GONE, v=PRIMARY_READY, co=relocating())
    assert vrg_state(p3) == "secondary"


def test_relocate_source_with_volsync_prepares_the_final_sync_only_after_the_application_left() -> None:
    d = flux_drc(action="Relocate", target="west", volsync=True)
    waiting = run("east", d, PRUNING, v=PRIMARY_READY, co=relocating())
    assert waiting.vrg is not None and not waiting.vrg["spec"].get("prepareForFinalSync")
    going = run("east", d, GONE, v=PRIMARY_READY, co=relocating())
    assert going.vrg is not None and going.vrg["spec"]["prepareForFinalSync"] is True


def test_relocate_source_that_has_not_read_the_kustomization_waits() -> None:
    p = run("east", flux_drc(action="Relocate", target="west"), ApplicationView(), v=PRIMARY_READY,
            co=relocating())
    assert vrg_state(p) == "primary"
    assert "checking" in cond(p, "Reconciling")["message"]


def test_a_stage_once_entered_is_not_undone_by_a_kustomization_that_reappears() -> None:
    # The demotion was asked already; someone recreating the Kustomization does not promote back.
    p = run("east", flux_drc(action="Relocate", target="west"), THERE, v=vrg("secondary", "Primary"),
            co=relocating())
    assert vrg_state(p) == "secondary"


def test_relocate_target_creates_the_kustomization_once_ready_after_the_takeover() -> None:
    d = flux_drc(action="Relocate", target="west")
    p = run("west", d, GONE, v=PRIMARY_READY, co=state("west", 2, "Relocate"))
    assert not any(isinstance(op, Transition) for op in p.coordination)
    assert p.kustomization is not None


def test_an_unreadable_kustomization_is_a_condition_and_the_relocate_waits() -> None:
    d = flux_drc(action="Relocate", target="west")
    p = run("east", d, ApplicationView(problem="HTTP 403 Forbidden"), v=PRIMARY_READY, co=relocating())
    assert cond(p, "FluxKustomization")["reason"] == "KustomizationUnknown"
    assert "403" in cond(p, "FluxKustomization")["message"]
    assert vrg_state(p) == "primary"


def test_stop_problem_without_a_template_is_nothing_to_wait_for() -> None:
    assert stop_problem(drc(), ApplicationView()) == ""


def test_differs_sees_a_new_readiness_and_a_changed_template_but_not_server_defaults() -> None:
    d = flux_drc()
    want = desired_kustomization(d, True, "2026-11-25T12:00:00Z")
    assert want is not None
    live = {**want, "spec": {**want["spec"], "force": False, "timeout": "5m"}, "status": {"x": 1}}
    assert not differs(live, want)
    later = desired_kustomization(d, True, "2026-11-25T12:05:00Z")
    assert later is not None and differs(live, later)
    d["spec"]["application"]["fluxKustomization"] = {**TEMPLATE, "spec": {**SPEC, "path": "./v2"}}
    changed = desired_kustomization(d, True, "2026-11-25T12:00:00Z")
    assert changed is not None and changed["metadata"]["annotations"][SPEC_HASH] != \
        want["metadata"]["annotations"][SPEC_HASH]
    assert differs(live, changed)


def test_owned_by_needs_both_labels() -> None:
    d = flux_drc()
    want = desired_kustomization(d, True, "t")
    assert want is not None and owned_by(want, d)
    other = {"metadata": {"labels": {OWNER_NAMESPACE_LABEL: "ns", OWNER_NAME_LABEL: "other"}}}
    assert not owned_by(other, d) and not owned_by({"metadata": {}}, d)


@pytest.mark.parametrize(("spec", "message"), [
    ({**SPEC, "prune": False}, "prune: must be true"),
    ({k: v for k, v in SPEC.items() if k != "prune"}, "prune: must be true"),
    ({**SPEC, "suspend": True}, "suspend: must not be true"),
])
def test_the_model_refuses_a_template_that_would_never_prune(spec: dict[str, Any], message: str) -> None:
    d = flux_drc()
    d["spec"]["application"]["fluxKustomization"] = {**TEMPLATE, "spec": spec}
    with pytest.raises(ModelError, match=message):
        DRControlSpec.from_dict(d["spec"], "spec")


def test_an_old_primary_back_after_a_failover_demotes_only_after_flux_pruned_the_application() -> None:
    d = flux_drc()
    back = run("east", d, THERE, v=PRIMARY_READY, co=state("west", 2, "Failover"))
    assert cond(back, "ReadyForApplication")["status"] == "False"
    assert back.kustomization is None, "the application is removed"
    assert back.vrg is None, "the VRG stays as it is while the application still runs"
    assert cond(back, "VRGHealthy")["reason"] == "WaitingForApplicationStop"
    pruned = run("east", d, GONE, v=PRIMARY_READY, co=state("west", 2, "Failover"))
    assert vrg_state(pruned) == "secondary"


def test_a_new_protection_creates_no_secondary_vrg_under_a_running_application() -> None:
    p = run("west", flux_drc(), THERE, co=state("east", 1))
    assert p.vrg is None and p.kustomization is None
    assert vrg_state(run("west", flux_drc(), GONE, co=state("east", 1))) == "secondary"


def argo_drc(acked: str | None = None, **kw: Any) -> dict[str, Any]:
    d = drc(**kw)
    d["spec"]["application"] = {"argoCD": {"applicationSet": "my-app"}}
    if acked is not None:
        d["metadata"]["annotations"] = {STOPPED_ANNOTATION: acked}
    return d


def test_argocd_relocate_source_waits_for_the_plugin_to_acknowledge_this_withdrawal() -> None:
    first = run("east", argo_drc(action="Relocate", target="west"), GONE, v=PRIMARY_READY, co=relocating())
    rfa = cond(first, "ReadyForApplication")
    assert rfa["status"] == "False"
    assert vrg_state(first) == "primary", "no demotion before Argo CD's Application is gone"
    assert "argocd/my-app" in cond(first, "Reconciling")["message"]
    assert first.kustomization is None and not first.manages_application
    # An acknowledgement of an earlier withdrawal does not count ...
    stale = run("east", argo_drc("2020-01-01T00:00:00Z", action="Relocate", target="west", status=first.status),
                GONE, v=PRIMARY_READY, co=relocating())
    assert vrg_state(stale) == "primary"
    # ... the one of this withdrawal does.
    acked = run("east", argo_drc(rfa["lastTransitionTime"], action="Relocate", target="west", status=first.status),
                GONE, v=PRIMARY_READY, co=relocating())
    assert vrg_state(acked) == "secondary"


def test_argocd_old_primary_back_after_a_failover_demotes_only_once_acknowledged() -> None:
    back = run("east", argo_drc(), GONE, v=PRIMARY_READY, co=state("west", 2, "Failover"))
    assert back.vrg is None and cond(back, "VRGHealthy")["reason"] == "WaitingForApplicationStop"
    since = cond(back, "ReadyForApplication")["lastTransitionTime"]
    acked = run("east", argo_drc(since, status=back.status), GONE, v=PRIMARY_READY,
                co=state("west", 2, "Failover"))
    assert vrg_state(acked) == "secondary"


def test_the_model_refuses_two_tools_for_one_application() -> None:
    d = flux_drc()
    d["spec"]["application"]["argoCD"] = {"applicationSet": "my-app"}
    with pytest.raises(ModelError, match="one tool deploys the application"):
        DRControlSpec.from_dict(d["spec"], "spec")
