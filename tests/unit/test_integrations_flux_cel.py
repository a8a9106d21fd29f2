"""flux/drcontrol-kustomization.yaml's healthCheckExprs, evaluated by a real CEL implementation.

`flux_status` follows Flux's StatusEvaluator (fluxcd/pkg runtime/cel): InProgress while
status.observedGeneration differs from metadata.generation, then the expressions in the order
inProgress, failed, current (the first true one decides), and InProgress when none is true.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from celpy.celtypes import BoolType
from celpy.evaluation import CELEvalError

ROOT = Path(__file__).resolve().parents[2]
T0 = "2026-11-25T12:00:00Z"


def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": T0,
            "observedGeneration": 2}


def _conds(ready: tuple[bool, str, str], rfa: bool, reconciling: tuple[bool, str], stalled: tuple[bool, str, str],
           ) -> list[dict[str, Any]]:
    return [
        cond("Ready", str(ready[0]), ready[1], ready[2]),
        cond("ReadyForApplication", str(rfa), "DataReady" if rfa else "NotPrimary", "rfa"),
        cond("Reconciling", str(reconciling[0]), "Progressing" if reconciling[0] else "Idle", reconciling[1]),
        cond("Stalled", str(stalled[0]), stalled[1], stalled[2]),
    ]


IDLE = (False, "nothing in progress")
NOT_STALLED = (False, "NotStalled", "no blocking problem")

# DRControl status as the operator writes it in each situation (see reconciler/plan/drcontrol.py).
STATES: dict[str, list[dict[str, Any]] | None] = {
    "primary-ready": _conds((True, "Protecting", "DRControl is Primary and protecting"), True, IDLE, NOT_STALLED),
    "secondary": _conds((True, "Protecting", "Secondary, replicating from east"), False, IDLE, NOT_STALLED),
    "reconciling": _conds((False, "Relocating", "relocating to west: waiting for the final sync"), False,
                          (True, "relocating to west: waiting for the final sync"), NOT_STALLED),
    "stalled": _conds((False, "InvalidPolicy", "DRPolicy dr-policy-east-west not found"), False, IDLE,
                      (True, "InvalidPolicy", "DRPolicy dr-policy-east-west not found")),
    # Roles freeze on a corrupt dr-state: the Primary keeps ReadyForApplication=True.
    "stalled-frozen-ready": _conds((False, "S3CorruptObject", "dr-state is corrupt"), True, IDLE,
                                   (True, "S3CorruptObject",
                                    "dr-state is corrupt; roles are frozen until the object is repaired")),
    # An outage freezes roles the same way and is Stalled too (kstatus then reads Failed).
    "s3-unreachable": _conds((False, "S3Unreachable", "the coordination store does not answer"), True, IDLE,
                             (True, "S3Unreachable", "the coordination store does not answer; roles are frozen "
                              "until the coordination store answers")),
    "stale-status": _conds((True, "Protecting", "ok"), True, IDLE, NOT_STALLED),
    "no-conditions": [],
    "no-status": None,
}


def drcontrol(state: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "ramendr.openshift.io/v1alpha1",
        "kind": "DRControl",
        "metadata": {"name": "my-app-dr", "namespace": "my-app", "generation": 2},
        "spec": {"drPolicyRef": {"name": "dr-policy-east-west"}},
    }
    conds = STATES[state]
    if conds is not None:
        obj["status"] = {"observedGeneration": 1 if state == "stale-status" else 2, "phase": "Protecting",
                         "currentPrimary": "east", "generation": 3, "conditions": copy.deepcopy(conds)}
    return obj


def _exprs() -> dict[str, str]:
    ks = yaml.safe_load((ROOT / "flux" / "drcontrol-kustomization.yaml").read_text())
    [entry] = ks["spec"]["healthCheckExprs"]
    assert (entry["apiVersion"], entry["kind"]) == ("ramendr.openshift.io/v1alpha1", "DRControl")
    return {k: entry[k] for k in ("inProgress", "failed", "current")}


EXPRS = _exprs()
ENV = celpy.Environment()
PROGRAMS = {k: ENV.program(ENV.compile(v)) for k, v in EXPRS.items()}


def evaluate(which: str, obj: dict[str, Any]) -> bool:
    # The object's top-level fields are the expression's variables, as in Flux.
    result = PROGRAMS[which].evaluate({k: json_to_cel(v) for k, v in obj.items()})
    assert isinstance(result, BoolType), f"{which} gave {result!r}"
    return bool(result)


def flux_status(obj: dict[str, Any]) -> str:
    observed = obj.get("status", {}).get("observedGeneration")
    if observed is not None and observed != obj["metadata"].get("generation"):
        return "InProgress"
    for which, status in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        if evaluate(which, obj):
            return status
    return "InProgress"


EXPECTED = {
    "primary-ready": "Current",
    "secondary": "InProgress",
    "reconciling": "InProgress",
    "stalled": "Failed",
    "stalled-frozen-ready": "Current",
    "s3-unreachable": "Current",
    "stale-status": "InProgress",
    "no-conditions": "InProgress",
}


@pytest.mark.parametrize("state", sorted(EXPECTED))
def test_flux_status_of_each_state(state: str) -> None:
    assert flux_status(drcontrol(state)) == EXPECTED[state]


@pytest.mark.parametrize("state", sorted(EXPECTED))
def test_expressions_are_mutually_exclusive(state: str) -> None:
    obj = drcontrol(state)
    if "status" in obj and "conditions" in obj["status"]:
        assert sum(evaluate(w, obj) for w in EXPRS) == 1


def test_no_status_is_never_current() -> None:
    # cel-go (Flux) fails to evaluate `status` on an object without one and Flux keeps waiting;
    # whatever this implementation does, it must not say Current.
    with contextlib.suppress(CELEvalError):
        assert flux_status(drcontrol("no-status")) != "Current"


def test_only_ready_for_application_makes_it_current() -> None:
    obj = drcontrol("primary-ready")
    for c in obj["status"]["conditions"]:
        if c["type"] == "ReadyForApplication":
            c["status"] = "Unknown"
    assert flux_status(obj) == "InProgress"
