"""A deep copy for JSON-shaped values (dicts, lists, scalars): Kubernetes objects as the client returns them.

`copy.deepcopy` keeps a memo and dispatches per type; for JSON trees, which have no shared or
cyclic parts, a plain recursive copy gives the same result several times faster, and objects are
copied on every reconcile.
"""

from __future__ import annotations

import copy
from typing import TypeVar

T = TypeVar("T")
_SCALARS = (str, int, float, bool, type(None))


def json_copy(value: T) -> T:
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [json_copy(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, _SCALARS):
        return value
    return copy.deepcopy(value)
