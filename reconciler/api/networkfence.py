"""csi-addons NetworkFence (upstream api/csiaddons/v1alpha1/networkfence_types.go), cluster-scoped.

We create and update fences; the csi-addons controller reports the result. Unknown fields are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.api.common import Fields, ModelError, ObjectMeta, Resource, emit, emit_object, parse_object
from reconciler.api.conditions import Condition, emit_conditions, parse_conditions

NETWORKFENCE: Final = Resource("csiaddons.openshift.io", "v1alpha1", "networkfences", "NetworkFence", namespaced=False)

FENCE_STATE_FENCED: Final = "Fenced"
FENCE_STATE_UNFENCED: Final = "Unfenced"
FENCE_STATES: Final = (FENCE_STATE_FENCED, FENCE_STATE_UNFENCED)

RESULT_SUCCEEDED: Final = "Succeeded"
RESULT_FAILED: Final = "Failed"
RESULTS: Final = (RESULT_SUCCEEDED, RESULT_FAILED)


@dataclass
class FenceSecret:
    name: str | None = None
    namespace: str | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> FenceSecret:
        f = Fields(d, path)
        return cls(name=f.string("name"), namespace=f.string("namespace"))

    def to_dict(self) -> dict[str, Any]:
        return emit({}, name=self.name, namespace=self.namespace)


@dataclass
class NetworkFenceSpec:
    fence_state: str
    cidrs: list[str]
    driver: str | None = None
    secret: FenceSecret | None = None
    parameters: dict[str, str] | None = None
    network_fence_class_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> NetworkFenceSpec:
        f = Fields(d, path)
        cidrs = f.string_list("cidrs", required=True)
        assert cidrs is not None
        spec = cls(
            fence_state=f.req_string("fenceState", choices=FENCE_STATES),
            cidrs=cidrs,
            driver=f.string("driver"),
            secret=f.nested("secret", FenceSecret.from_dict),
            parameters=f.string_map("parameters"),
            network_fence_class_name=f.string("networkFenceClassName"),
            extra=f.extra(),
        )
        # The same rules as upstream's CEL validations.
        if spec.driver is None and spec.network_fence_class_name is None:
            raise ModelError(f.at("driver"), "one of driver or networkFenceClassName must be present")
        if spec.network_fence_class_name is None and spec.secret is None:
            raise ModelError(f.at("secret"), "must be present when networkFenceClassName is not specified")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            networkFenceClassName=self.network_fence_class_name,
            driver=self.driver,
            fenceState=self.fence_state,
            cidrs=list(self.cidrs),
            secret=None if self.secret is None else self.secret.to_dict(),
            parameters=None if self.parameters is None else dict(self.parameters),
        )


@dataclass
class NetworkFenceStatus:
    result: str | None = None
    message: str | None = None
    conditions: list[Condition] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.result == RESULT_SUCCEEDED

    @classmethod
    def from_dict(cls, d: Any, path: str) -> NetworkFenceStatus:
        f = Fields(d, path)
        return cls(
            result=f.string("result", choices=RESULTS),
            message=f.string("message"),
            conditions=parse_conditions(f),
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            result=self.result,
            message=self.message,
            conditions=emit_conditions(self.conditions),
        )


@dataclass
class NetworkFence:
    metadata: ObjectMeta
    spec: NetworkFenceSpec
    status: NetworkFenceStatus = field(default_factory=NetworkFenceStatus)

    @classmethod
    def from_dict(cls, d: Any) -> NetworkFence:
        return cls(*parse_object(d, NETWORKFENCE, NetworkFenceSpec.from_dict, NetworkFenceStatus.from_dict,
                                 NetworkFenceStatus))

    def to_dict(self) -> dict[str, Any]:
        return emit_object(NETWORKFENCE, self.metadata, self.spec, self.status)
