"""argocd/health/drcontrol.lua run by a real Lua 5.1 interpreter (Argo CD embeds gopher-lua, a Lua 5.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa.lua51 import LuaRuntime  # type: ignore[import-untyped]

from tests.unit.test_integrations_flux_cel import STATES, drcontrol

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "argocd" / "health" / "drcontrol.lua").read_text()

EXPECTED: dict[str, tuple[str, str]] = {
    "primary-ready": ("Healthy", "DRControl is Primary and protecting"),
    "secondary": ("Healthy", "Secondary, replicating from east"),
    "reconciling": ("Progressing", "relocating to west: waiting for the final sync"),
    "stalled": ("Degraded", "DRPolicy dr-policy-east-west not found"),
    "stalled-frozen-ready": ("Degraded", "dr-state is corrupt; roles are frozen until the object is repaired"),
    "s3-unreachable": ("Degraded", "the coordination store does not answer; roles are frozen until the "
                       "coordination store answers"),
    "stale-status": ("Progressing", "Status is for generation 1, spec is at generation 2"),
    "no-conditions": ("Progressing", "Waiting for the Ready condition"),
    "no-status": ("Progressing", "Waiting for the ramen-p2p operator to report status"),
}


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    g = lua.globals()
    # Argo CD's sandbox has no os, io or module loading; make sure the script needs none of them.
    for name in ("os", "io", "require", "dofile", "loadfile", "package"):
        g[name] = None
    g.obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPT)
    return str(hs.status), str(hs.message)


@pytest.mark.parametrize("state", sorted(STATES))
def test_health_of_each_state(state: str) -> None:
    assert health(drcontrol(state)) == EXPECTED[state]


def test_every_state_has_an_expectation() -> None:
    assert set(EXPECTED) == set(STATES)


def test_message_falls_back_to_type_status_and_reason() -> None:
    obj = drcontrol("stalled")
    for c in obj["status"]["conditions"]:
        c["message"] = ""
    assert health(obj) == ("Degraded", "Stalled is True (InvalidPolicy)")


def test_argocd_cm_snippet_is_the_same_script() -> None:
    cm = yaml.safe_load((ROOT / "argocd" / "argocd-cm-health.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"]["resource.customizations.health.ramendr.openshift.io_DRControl"] == SCRIPT
