"""An ObjectStore whose S3 requests are counted by operation, for tests and benchmarks."""

from __future__ import annotations

from collections import Counter
from typing import Any

from reconciler.s3peer import ObjectStore


def counting_store(settings: dict[str, str]) -> tuple[ObjectStore, Counter[str]]:
    """A store on the server in `settings` (the local env's s3.json) and a live count per S3 operation."""
    store = ObjectStore.from_settings(settings)
    counts: Counter[str] = Counter()

    def hook(event_name: str, **_: Any) -> None:
        counts[event_name.rsplit(".", 1)[-1]] += 1

    store.client.meta.events.register("before-send.s3", hook)
    return store, counts
