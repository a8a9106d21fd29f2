"""A throwaway custom resource (Widget) for exercising the kube runtime in tests and benchmarks."""

from __future__ import annotations

from typing import Any

from reconciler.kube import ResourceType


def widget_kind(group: str) -> tuple[ResourceType, dict[str, Any]]:
    """The Widget resource type in `group` and the CRD that serves it (schemaless, with /status)."""
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }],
        },
    }
    return ResourceType(group, "v1", "widgets", "Widget"), crd
