"""API errors with the few questions controllers ask of them."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """A non-2xx answer from the API server (status 0: no answer at all)."""

    def __init__(self, status: int, reason: str = "", message: str = "", body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @classmethod
    def from_response(cls, status: int, data: bytes) -> ApiError:
        try:
            body = json.loads(data)
        except ValueError:
            return cls(status, "", data.decode(errors="replace")[:500])
        if isinstance(body, dict):
            return cls(status, str(body.get("reason", "")), str(body.get("message", "")), body)
        return cls(status, "", str(body)[:500], body)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def gone(self) -> bool:
        """The resourceVersion is too old (compacted): a watch must re-list."""
        return self.status == 410

    @property
    def conflict(self) -> bool:
        """Someone else wrote first (409: a stale resourceVersion, or the object already exists)."""
        return self.status == 409

    @property
    def failed_patch_test(self) -> bool:
        """A 422 without field causes: what the API server answers when a JSON-patch op (our
        resourceVersion `test`) does not hold. Validation failures come with `details.causes`."""
        if self.status != 422:
            return False
        details = self.body.get("details") if isinstance(self.body, dict) else None
        return not (isinstance(details, dict) and details.get("causes"))


class ConflictError(ApiError):
    """A guarded write lost a race; re-read (from the cache) and try again."""


class WatchGone(ApiError):
    """A watch or list was asked for a resourceVersion etcd has compacted away."""
