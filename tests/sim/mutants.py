"""Known bugs to inject, to show the simulation catches them (mutation self-tests).

Each mutant patches the code under test for the duration of a `with mutant(name):` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from reconciler.api import DRCONTROL, VRG
from reconciler.controllers import drcontrol as controller_mod
from reconciler.integrations import stopack as stopack_mod
from reconciler.kube import Result
from reconciler.kube.patch import replacing
from reconciler.plan import drcontrol as planner_mod
from reconciler.plan.inputs import SECONDARY, VRGView
from reconciler.s3peer import S3PeerError
from reconciler.s3peer.peer import Coordinator


def _promote_without_cas(self: Any, ds: Any, act: Any, why: str) -> Any:
    # Promote on the action alone, skipping the dr-state compare-and-swap.
    self.plan.vrg = planner_mod.desired_vrg(self.inp, "primary")
    return self._finish(planner_mod.FAILING_OVER, False, "Transitioning", why, True)


def _no_rollback_guard(seen: Any, current: Any) -> None:
    return None


def _release_before_demoted(self: VRGView) -> bool:
    # Counts the VRG as Secondary as soon as it is asked to be, before it reports it.
    return self.desired_state == SECONDARY


def _demote_on_outage(self: Any, reason: str, message: str, corrupt: bool) -> Any:
    # "Self-fencing" on an S3 outage: a blind role change the protocol forbids.
    p = _orig_freeze(self, reason, message, corrupt)
    p.vrg = planner_mod.desired_vrg(self.inp, SECONDARY)
    return p


_orig_freeze = planner_mod._Planner._freeze


def _status_last(self: Any, drc: Any, app: Any, p: Any, peering: Any, vrg_live: Any) -> Any:
    # The order before the fix: VRG, then cluster-status, then the DRControl status.
    if p.vrg is not None:
        self.applier.apply(VRG, p.vrg, vrg_live)
    if p.publish is not None and peering is not None:
        with contextlib.suppress(S3PeerError):
            peering.coordinator.write_cluster_status(app, p.publish)
    self.applier.apply_status(DRCONTROL, drc, replacing(drc.get("status"), p.status))
    return Result(requeue_after=p.requeue_after)


def _move_without_marker(self: Any, app: Any, quorum: Any) -> Any:
    # Copies dr-state into the register but leaves the single-store object as it was: a peer
    # still configured with one store goes on deciding there.
    rec = self.store.get(self.keys.dr_state(app))
    if rec is None:
        return None
    found = self._decode_single(rec)
    if not hasattr(found, "value"):
        return None
    return quorum.seed(app, found.value, found.nonce).current


def _demote_under_running_app(drc: Any, view: Any, withdrawn_at: str | None = None) -> str:
    # Never waits for Flux or Argo CD: the relocate and an old Primary demote while the application runs.
    return ""


def _ack_before_application_gone(applications: Any, appsets: Any, cluster: str) -> bool:
    # The plugin acknowledges a withdrawal without looking at Argo CD's Applications.
    return False


def _resync_trusts_held_state(*_: Any) -> bool:
    # A resync acts on the dr-state last read whatever its plan changes (promotes, reports ready).
    return True


# name -> (owner, attribute, replacement, the invariant that must catch it)
MUTANTS: dict[str, tuple[Any, str, Any, str]] = {
    "promote-without-cas": (planner_mod._Planner, "_take_over", _promote_without_cas, "I3"),
    "no-rollback-guard": (planner_mod, "check_rollback", _no_rollback_guard, "I1"),
    "release-before-demoted": (VRGView, "ready_as_secondary", property(_release_before_demoted), "I2"),
    "demote-on-outage": (planner_mod._Planner, "_freeze", _demote_on_outage, "I3"),
    "status-last": (controller_mod.DRControlController, "_apply", _status_last, "I5"),
    "move-without-marker": (Coordinator, "_move_into_quorum", _move_without_marker, "I3"),
    "demote-under-running-app": (planner_mod, "stop_problem", _demote_under_running_app, "I6"),
    "ack-before-application-gone": (stopack_mod, "application_remains", _ack_before_application_gone, "I6"),
    "resync-trusts-held-state": (controller_mod, "_quiet", _resync_trusts_held_state, "P1"),
}


@contextlib.contextmanager
def mutant(name: str) -> Iterator[None]:
    if not name:
        yield
        return
    owner, attr, replacement, _ = MUTANTS[name]
    original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    setattr(owner, attr, replacement)
    try:
        yield
    finally:
        setattr(owner, attr, original)
