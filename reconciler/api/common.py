"""Shared pieces of the typed API models: errors, field readers, metadata, selectors, time.

Every model follows the same rules:
- `from_dict(d)` validates what a single object can validate and raises `ModelError`
  naming the offending field path (`spec.vrgSpec.replicationType: must be one of async, sync`).
- `to_dict()` emits camelCase exactly like the CRD and omits optional fields that are unset (None).
- Keys a model does not know are kept in `extra` and emitted again, so reading a live object
  and writing it back (e.g. a JSON patch computed from two `to_dict()` results) never drops
  fields added by a newer CRD or by another controller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

from reconciler.kube.jsoncopy import json_copy
from reconciler.kube.resources import ResourceType

T = TypeVar("T")

GROUP: Final = "ramendr.openshift.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"


# One descriptor of "where a kind lives" for models, caches and the applier alike.
Resource = ResourceType


class ModelError(ValueError):
    """An object does not match its model; the message starts with the field path."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path or "<root>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


class Fields:
    """Typed, path-aware access to one JSON object; remembers which keys were read."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ModelError(path, f"must be an object, got {_type_name(data)}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self._seen: set[str] = set()

    def at(self, key: str) -> str:
        return join(self.path, key)

    def _get(self, key: str, required: bool) -> Any:
        self._seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise ModelError(self.at(key), "is required")
            return None
        return self.data[key]

    def string(self, key: str, *, choices: tuple[str, ...] | None = None, pattern: str | None = None) -> str | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ModelError(self.at(key), f"must be a string, got {_type_name(value)}")
        if choices is not None and value not in choices:
            raise ModelError(self.at(key), "must be one of " + ", ".join(c if c else '""' for c in choices))
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ModelError(self.at(key), f"must match {pattern}")
        return value

    def req_string(
        self,
        key: str,
        *,
        choices: tuple[str, ...] | None = None,
        pattern: str | None = None,
        allow_empty: bool = False,
    ) -> str:
        self._get(key, True)
        value = self.string(key, choices=choices, pattern=pattern)
        assert value is not None  # _get(required=True) raised otherwise
        if value == "" and not allow_empty:
            raise ModelError(self.at(key), "must not be empty")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise ModelError(self.at(key), f"must be a boolean, got {_type_name(value)}")
        return value

    def req_boolean(self, key: str) -> bool:
        self._get(key, True)
        value = self.boolean(key)
        assert value is not None
        return value

    def integer(self, key: str, *, minimum: int | None = None) -> int | None:
        value = self._get(key, False)
        if value is None:
            return None
        # bool is an int subclass in Python but not an integer in JSON.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ModelError(self.at(key), f"must be an integer, got {_type_name(value)}")
        if minimum is not None and value < minimum:
            raise ModelError(self.at(key), f"must be >= {minimum}")
        return value

    def number(self, key: str, *, minimum: float | None = None) -> float | None:
        v = self._get(key, False)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ModelError(self.at(key), "must be a number")
        if minimum is not None and v < minimum:
            raise ModelError(self.at(key), f"must be at least {minimum}")
        return float(v)

    def string_list(self, key: str, *, required: bool = False) -> list[str] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ModelError(self.at(key), f"must be an array, got {_type_name(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ModelError(join(self.at(key), i), f"must be a string, got {_type_name(item)}")
        return list(value)

    def string_map(self, key: str) -> dict[str, str] | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ModelError(self.at(key), f"must be an object, got {_type_name(value)}")
        for k, v in value.items():
            if not isinstance(v, str):
                raise ModelError(join(self.at(key), str(k)), f"must be a string, got {_type_name(v)}")
        return dict(value)

    def raw_object(self, key: str) -> dict[str, Any] | None:
        """A sub-object passed through unchanged (deep-copied so callers cannot alias the input)."""
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ModelError(self.at(key), f"must be an object, got {_type_name(value)}")
        return json_copy(dict(value))

    def nested(self, key: str, parse: Callable[[Any, str], T], *, required: bool = False) -> T | None:
        value = self._get(key, required)
        if value is None:
            return None
        return parse(value, self.at(key))

    def req_nested(self, key: str, parse: Callable[[Any, str], T]) -> T:
        value = self.nested(key, parse, required=True)
        assert value is not None
        return value

    def items(self, key: str, parse: Callable[[Any, str], T], *, required: bool = False) -> list[T] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ModelError(self.at(key), f"must be an array, got {_type_name(value)}")
        return [parse(item, join(self.at(key), i)) for i, item in enumerate(value)]

    def extra(self) -> dict[str, Any]:
        """Keys not read so far, deep-copied."""
        return {k: json_copy(v) for k, v in self.data.items() if k not in self._seen}


def emit(extra: Mapping[str, Any], /, **fields: Any) -> dict[str, Any]:
    """Build a JSON object: unknown keys first, then known ones; None means "unset" and is left out.

    Keyword names are already the camelCase JSON names.
    """
    out: dict[str, Any] = json_copy(dict(extra))
    for key, value in fields.items():
        if value is not None:
            out[key] = value
    return out


def check_kind(f: Fields, api_version: str, kind: str) -> None:
    """apiVersion/kind may be absent (objects from typed list calls), but if present must match."""
    f.string("apiVersion", choices=(api_version,))
    f.string("kind", choices=(kind,))


S = TypeVar("S")
St = TypeVar("St")


class _ToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def parse_object(d: Any, resource: ResourceType, spec: Callable[[Any, str], S],
                 status: Callable[[Any, str], St], empty_status: Callable[[], St]) -> tuple[ObjectMeta, S, St]:
    """metadata, spec (required) and status of a top-level object of `resource`."""
    f = Fields(d, "")
    check_kind(f, resource.api_version, resource.kind)
    return (f.nested("metadata", ObjectMeta.from_dict) or ObjectMeta(), f.req_nested("spec", spec),
            f.nested("status", status) or empty_status())


def emit_object(resource: ResourceType, metadata: ObjectMeta, spec: _ToDict, status: _ToDict) -> dict[str, Any]:
    # An empty status is left out: the API server treats it the same and users never wrote one.
    return emit({}, apiVersion=resource.api_version, kind=resource.kind, metadata=metadata.to_dict(),
                spec=spec.to_dict(), status=status.to_dict() or None)


# --- time -------------------------------------------------------------------------------------

RFC3339: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def format_time(t: datetime) -> str:
    """metav1.Time form: UTC, second precision, trailing Z."""
    if t.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> datetime:
    if not RFC3339.match(s):
        raise ValueError(f"not an RFC 3339 time: {s!r}")
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def time_field(f: Fields, key: str) -> str | None:
    value = f.string(key)
    if value is not None and not RFC3339.match(value):
        raise ModelError(f.at(key), f"must be an RFC 3339 date-time, got {value!r}")
    return value


# --- metadata ---------------------------------------------------------------------------------


@dataclass
class ObjectMeta:
    """The parts of metav1.ObjectMeta the controllers use; the rest is kept in `extra`."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str = "metadata") -> ObjectMeta:
        f = Fields(d, path)
        owners = f.items("ownerReferences", lambda v, p: Fields(v, p).extra())
        return cls(
            name=f.string("name"),
            namespace=f.string("namespace"),
            uid=f.string("uid"),
            resource_version=f.string("resourceVersion"),
            generation=f.integer("generation", minimum=0),
            creation_timestamp=time_field(f, "creationTimestamp"),
            deletion_timestamp=time_field(f, "deletionTimestamp"),
            labels=f.string_map("labels"),
            annotations=f.string_map("annotations"),
            finalizers=f.string_list("finalizers"),
            owner_references=owners,
            extra=f.extra(),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit(
            self.extra,
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            resourceVersion=self.resource_version,
            generation=self.generation,
            creationTimestamp=self.creation_timestamp,
            deletionTimestamp=self.deletion_timestamp,
            labels=None if self.labels is None else dict(self.labels),
            annotations=None if self.annotations is None else dict(self.annotations),
            finalizers=None if self.finalizers is None else list(self.finalizers),
            ownerReferences=None if self.owner_references is None else json_copy(self.owner_references),
        )


# --- label selectors --------------------------------------------------------------------------

SELECTOR_OPERATORS: Final = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass
class LabelSelectorRequirement:
    key: str
    operator: str
    values: list[str] | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> LabelSelectorRequirement:
        f = Fields(d, path)
        return cls(
            key=f.req_string("key"),
            operator=f.req_string("operator", choices=SELECTOR_OPERATORS),
            values=f.string_list("values"),
        )

    def to_dict(self) -> dict[str, Any]:
        return emit({}, key=self.key, operator=self.operator, values=self.values)


@dataclass
class LabelSelector:
    """metav1.LabelSelector. An empty selector matches everything."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str) -> LabelSelector:
        f = Fields(d, path)
        return cls(
            match_labels=f.string_map("matchLabels"),
            match_expressions=f.items("matchExpressions", LabelSelectorRequirement.from_dict),
        )

    def to_dict(self) -> dict[str, Any]:
        exprs = None if self.match_expressions is None else [e.to_dict() for e in self.match_expressions]
        labels = None if self.match_labels is None else dict(self.match_labels)
        return emit({}, matchLabels=labels, matchExpressions=exprs)
