"""The capability probe refuses a store that ignores conditional headers."""

from __future__ import annotations

import hashlib
from typing import Any

from reconciler.s3peer import NOT_MODIFIED, ObjectStore, PreconditionFailed, StoredObject, probe


class DictStore(ObjectStore):
    """An in-memory store; `honour=False` behaves like an S3 clone that ignores the headers."""

    def __init__(self, honour: bool) -> None:
        super().__init__(client=None, bucket="mem")
        self.honour = honour
        self.objects: dict[str, bytes] = {}

    def _etag(self, key: str) -> str:
        return '"' + hashlib.md5(self.objects[key]).hexdigest() + '"'

    def put(self, key: str, data: bytes, *, if_none_match_any: bool = False, if_match: str | None = None,
            content_type: str = "application/json") -> str:
        if self.honour and ((if_none_match_any and key in self.objects)
                            or (if_match and (key not in self.objects or self._etag(key) != if_match))):
            raise PreconditionFailed("412", key=key)
        self.objects[key] = data
        return self._etag(key)

    def get(self, key: str, *, if_none_match: str | None = None, max_bytes: int | None = None) -> Any:
        if key not in self.objects:
            return None
        if if_none_match == self._etag(key):
            return NOT_MODIFIED
        return StoredObject(key, self.objects[key], self._etag(key))

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self.objects.pop(key, None)


def test_store_honouring_conditions_is_fit_and_cleaned_up() -> None:
    store = DictStore(honour=True)
    res = probe(store)
    assert res.fit and res.reason is None
    assert store.objects == {}


def test_store_ignoring_conditions_is_refused_with_its_reason() -> None:
    res = probe(DictStore(honour=False))
    assert not res.fit and not res.conditional_writes
    assert res.reason == "ConditionalWritesUnsupported"


def test_slow_store_is_refused() -> None:
    ticks = iter(range(0, 10_000, 2))
    res = probe(DictStore(honour=True), max_median_latency=1.0, clock=lambda: float(next(ticks)))
    assert res.conditional_writes and not res.fit and res.reason == "S3TooSlow"
