"""Where the application runs: the Flux Kustomization the operator owns, decided from ReadyForApplication.

With `spec.application.fluxKustomization` the DRControl carries a Kustomization template. The
operator creates that Kustomization on a cluster while the cluster is ReadyForApplication and
deletes it otherwise; Flux applies the application when it appears and prunes it when it goes.
So the application exists only on the Primary that is ready for it, and leaves the old Primary
on a relocate or (when it comes back) after a failover, without anyone stopping it by hand.

A relocate needs the application stopped before the final sync and the demotion; the planner
waits for `ApplicationView.present` to be False (the Kustomization gone, i.e. Flux finished
pruning) before it asks the VRG for either. With `spec.application.argoCD` it waits instead for
the Argo CD plugin's acknowledgement (an annotation on the DRControl) that Argo CD's Application
for this cluster is gone.

Pure: the controller reads the Kustomization and writes what `desired_kustomization` returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from reconciler.kube.resources import ResourceType

KUSTOMIZATION: Final = ResourceType("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization")
# Labels on the Kustomization that say which DRControl owns it (an owner reference cannot cross namespaces).
OWNER_NAMESPACE_LABEL: Final = "ramendr.openshift.io/drcontrol-namespace"
OWNER_NAME_LABEL: Final = "ramendr.openshift.io/drcontrol-name"
# Flux reconciles an object at once when this annotation's value changes (fluxcd/pkg/apis/meta).
REQUESTED_AT: Final = "reconcile.fluxcd.io/requestedAt"
# A hash of the spec written: the live spec also holds server defaults, so it cannot be compared.
SPEC_HASH: Final = "ramendr.openshift.io/spec-hash"
# Written on a DRControl by the Argo CD plugin: the ReadyForApplication=False transition time after
# which Argo CD's Application for this cluster was seen gone (the application stopped here).
STOPPED_ANNOTATION: Final = "ramendr.openshift.io/application-stopped"


@dataclass(frozen=True)
class ApplicationView:
    """The owned Kustomization as last read from the API server.

    `present` is True while it exists (also while being deleted: Flux is still pruning), False
    once it is gone, None when it has not been read. `problem` says why it could not be read.
    """

    present: bool | None = None
    deleting: bool = False
    problem: str = ""


@dataclass(frozen=True)
class FluxTemplate:
    name: str
    namespace: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def flux_template(drc: Mapping[str, Any]) -> FluxTemplate | None:
    """The DRControl's Kustomization template, or None when it names none (or is malformed)."""
    t = ((drc.get("spec") or {}).get("application") or {}).get("fluxKustomization")
    if not isinstance(t, Mapping) or not isinstance(t.get("spec"), Mapping):
        return None
    name, namespace = t.get("name"), t.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str) or not name or not namespace:
        return None
    labels = t.get("labels") if isinstance(t.get("labels"), Mapping) else {}
    return FluxTemplate(name, namespace, t["spec"], {str(k): str(v) for k, v in (labels or {}).items()})


def desired_kustomization(drc: Mapping[str, Any], ready: bool, ready_since: str) -> dict[str, Any] | None:
    """The Kustomization to exist on this cluster, or None for "delete it".

    `ready_since` (the ReadyForApplication transition time) goes into Flux's requestedAt
    annotation: each new readiness asks Flux to reconcile at once, even when the object already
    existed (a delete that had not happened yet), instead of after `spec.interval`.
    """
    t = flux_template(drc)
    if t is None or not ready:
        return None
    meta = drc.get("metadata") or {}
    spec = json.loads(json.dumps(t.spec))
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "apiVersion": KUSTOMIZATION.api_version,
        "kind": KUSTOMIZATION.kind,
        "metadata": {
            "name": t.name,
            "namespace": t.namespace,
            "labels": {**t.labels, OWNER_NAMESPACE_LABEL: str(meta.get("namespace") or ""),
                       OWNER_NAME_LABEL: str(meta.get("name") or "")},
            "annotations": {REQUESTED_AT: ready_since, SPEC_HASH: digest},
        },
        "spec": spec,
    }


def owned_by(obj: Mapping[str, Any], drc: Mapping[str, Any]) -> bool:
    """Whether the Kustomization carries this DRControl's owner labels (never delete another's)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    meta = drc.get("metadata") or {}
    return labels.get(OWNER_NAMESPACE_LABEL) == meta.get("namespace") and \
        labels.get(OWNER_NAME_LABEL) == meta.get("name")


def differs(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the live Kustomization must be rewritten: a label, the requestedAt or the spec hash differs."""
    lm, dm = live.get("metadata") or {}, desired["metadata"]
    return any((lm.get("labels") or {}).get(k) != v for k, v in dm["labels"].items()) or \
        any((lm.get("annotations") or {}).get(k) != v for k, v in dm["annotations"].items())


@dataclass(frozen=True)
class ArgoCDRef:
    application_set: str
    namespace: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.application_set}"


def argocd_ref(drc: Mapping[str, Any]) -> ArgoCDRef | None:
    """spec.application.argoCD, or None when it is not set (or malformed)."""
    a = ((drc.get("spec") or {}).get("application") or {}).get("argoCD")
    if not isinstance(a, Mapping) or not isinstance(a.get("applicationSet"), str) or not a["applicationSet"]:
        return None
    ns = a.get("namespace")
    return ArgoCDRef(a["applicationSet"], ns if isinstance(ns, str) and ns else "argocd")


def stop_problem(drc: Mapping[str, Any], view: ApplicationView, withdrawn_at: str | None = None) -> str | None:
    """Why the relocate must wait for the application to stop here, "" when it has stopped, None when unknown.

    Waited for: a Kustomization the operator owns (until it is gone), or, with spec.application.argoCD,
    the plugin's acknowledgement of the withdrawal at `withdrawn_at` (ReadyForApplication's False
    transition time; an acknowledgement of an earlier withdrawal does not count). Without either,
    stopping the application is the deployment tool's part (ReadyForApplication is False), and
    Ramen's VRG itself refuses to become Secondary while a running pod uses a protected PVC.
    """
    t = flux_template(drc)
    if t is None:
        argo = argocd_ref(drc)
        if argo is None:
            return ""
        acked = ((drc.get("metadata") or {}).get("annotations") or {}).get(STOPPED_ANNOTATION)
        if withdrawn_at and acked == withdrawn_at:
            return ""
        return (f"waiting for the Argo CD plugin to see ApplicationSet {argo.ref}'s Application for this cluster "
                f"gone (annotation {STOPPED_ANNOTATION}={withdrawn_at or '?'}, now "
                f"{acked if acked else 'absent'})")
    if view.problem:
        return f"cannot read Kustomization {t.ref}: {view.problem}"
    if view.present is None:
        return None
    if view.present:
        return f"Kustomization {t.ref} is " + ("being deleted; Flux is pruning the application" if view.deleting
                                               else "still there; deleting it so Flux prunes the application")
    return ""
