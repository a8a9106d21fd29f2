"""The plugin acknowledges a withdrawal only once Argo CD's Application for that cluster is gone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.integrations.stopack import Acknowledger, application_remains, withdrawal_to_acknowledge
from reconciler.plan.application import STOPPED_ANNOTATION

T1 = "2026-12-02T10:00:00Z"


def drcontrol(ready: bool, since: str = T1, argocd: bool = True, acked: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "metadata": {"namespace": "ns", "name": "app"},
        "spec": {"application": {"argoCD": {"applicationSet": "my-app"}}} if argocd else {},
        "status": {"conditions": [{"type": "ReadyForApplication", "status": str(ready), "reason": "r",
                                   "lastTransitionTime": since}]},
    }
    if acked is not None:
        d["metadata"]["annotations"] = {STOPPED_ANNOTATION: acked}
    return d


APPSET = {"metadata": {"name": "my-app"},
          "spec": {"generators": [{"plugin": {"configMapRef": {"name": "cm"},
                                              "input": {"parameters": {"namespace": "ns", "drcontrol": "app"}}}}]}}


def application(cluster: str, appset: str = "my-app") -> dict[str, Any]:
    return {"metadata": {"name": f"app-{cluster}", "ownerReferences": [{"kind": "ApplicationSet", "name": appset}]},
            "spec": {"destination": {"name": cluster}}}


class Listed:
    def __init__(self, items: list[Mapping[str, Any]]) -> None:
        self.items = items

    def list(self) -> Sequence[Mapping[str, Any]]:
        return self.items

    def annotate(self, name: str, key: str, value: str) -> None:
        raise AssertionError("no ApplicationSet is annotated here")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def acknowledger(apps: list[Mapping[str, Any]]) -> tuple[Acknowledger, list[tuple[str, ...]], Clock]:
    written: list[tuple[str, ...]] = []
    clock = Clock()
    ack = Acknowledger(Listed([APPSET]), Listed(apps), lambda *a: written.append(a), "cm", monotonic=clock)
    return ack, written, clock


def test_only_a_withdrawal_of_an_argocd_application_not_yet_acknowledged_is_pending() -> None:
    assert withdrawal_to_acknowledge(drcontrol(False)) == T1
    assert withdrawal_to_acknowledge(drcontrol(True)) is None
    assert withdrawal_to_acknowledge(drcontrol(False, argocd=False)) is None
    assert withdrawal_to_acknowledge(drcontrol(False, acked=T1)) is None
    assert withdrawal_to_acknowledge(drcontrol(False, acked="2020-01-01T00:00:00Z")) == T1


def test_an_application_remains_only_for_its_appset_and_destination() -> None:
    apps = [application("east"), application("west", appset="other")]
    assert application_remains(apps, {"my-app"}, "east")
    assert not application_remains(apps, {"my-app"}, "west")
    assert not application_remains(apps, set(), "east")


def test_the_withdrawal_is_acknowledged_once_the_application_is_gone() -> None:
    apps: list[Mapping[str, Any]] = [application("east")]
    ack, written, _ = acknowledger(apps)
    ack.observe("east", "MODIFIED", drcontrol(False))
    assert ack.check() == 0 and not written, "Argo CD's Application for east still exists"
    apps.clear()
    assert ack.check() == 1
    assert written == [("east", "ns", "app", STOPPED_ANNOTATION, T1)]
    assert ack.check() == 0, "acknowledged once"


def test_no_acknowledgement_within_the_grace_after_an_answer_naming_the_cluster() -> None:
    ack, written, clock = acknowledger([])
    ack.answered("ns", "app", ["east"])
    ack.observe("east", "MODIFIED", drcontrol(False))
    clock.t += 1.0
    assert ack.check() == 0, "Argo CD may still be creating the Application from that answer"
    clock.t += 1.5
    assert ack.check() == 1 and written


def test_a_ready_again_or_deleted_drcontrol_is_no_longer_pending() -> None:
    ack, written, _ = acknowledger([])
    ack.observe("east", "MODIFIED", drcontrol(False))
    ack.observe("east", "MODIFIED", drcontrol(True))
    ack.observe("west", "MODIFIED", drcontrol(False))
    ack.observe("west", "DELETED", drcontrol(False))
    assert ack.check() == 0 and not written
