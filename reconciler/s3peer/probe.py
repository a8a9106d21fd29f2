"""The capability probe: does this store honour conditional writes, and how fast is it?"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.s3peer.errors import (
    ConditionalWritesUnsupported,
    PreconditionFailed,
    S3PeerError,
)
from reconciler.s3peer.keys import normalize_prefix
from reconciler.s3peer.store import NOT_MODIFIED, ObjectStore

R = TypeVar("R")

PROBE_DIR = "ramen-p2p-probe/"
#: Above this median round trip, coordination still works but every step is slow.
DEFAULT_MAX_MEDIAN_LATENCY = 1.0


@dataclass
class ProbeResult:
    """`fit` is True only when every check a coordinating cluster relies on passed."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    error: S3PeerError | None = None
    max_median_latency: float = DEFAULT_MAX_MEDIAN_LATENCY

    @property
    def median_latency(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None

    @property
    def conditional_writes(self) -> bool:
        return self.error is None and all(ok for name, ok, _ in self.checks if name.startswith("conditional"))

    @property
    def latency_ok(self) -> bool:
        m = self.median_latency
        return m is not None and m <= self.max_median_latency

    @property
    def fit(self) -> bool:
        return self.error is None and bool(self.checks) and all(ok for _, ok, _ in self.checks) and self.latency_ok

    @property
    def reason(self) -> str | None:
        """A condition reason for DRPolicy Validated=False, or None when fit."""
        if self.error is not None:
            return self.error.reason
        if not self.conditional_writes:
            return ConditionalWritesUnsupported.reason
        if not self.fit:
            return "S3TooSlow" if not self.latency_ok else "S3ProbeFailed"
        return None


def probe(store: ObjectStore, *, key_prefix: str = "", latency_samples: int = 5,
          max_median_latency: float = DEFAULT_MAX_MEDIAN_LATENCY,
          clock: Callable[[], float] = time.monotonic) -> ProbeResult:
    """Create a probe key with If-None-Match: * twice (the second must fail with 412),
    check If-Match both ways and a conditional GET, time a few round trips, clean up."""
    res = ProbeResult(max_median_latency=max_median_latency)
    key = f"{normalize_prefix(key_prefix)}{PROBE_DIR}{uuid.uuid4()}"

    def timed(fn: Callable[[], R]) -> R:
        t0 = clock()
        out = fn()  # failed requests are not latency samples
        res.latencies.append(clock() - t0)
        return out

    def check(name: str, ok: bool, detail: str) -> None:
        res.checks.append((name, ok, detail))

    created = False
    try:
        etag = timed(lambda: store.put(key, b"probe-1", if_none_match_any=True))
        created = True
        check("create with If-None-Match: *", True, "accepted")
        try:
            timed(lambda: store.put(key, b"probe-2", if_none_match_any=True))
            check("conditional create refused on an existing key", False,
                  "a second If-None-Match: * PUT was accepted: the store ignores the header")
        except PreconditionFailed:
            check("conditional create refused on an existing key", True, "412")
        try:
            timed(lambda: store.put(key, b"probe-3", if_match='"0123456789abcdef0123456789abcdef"'))
            check("conditional update refused for a stale ETag", False, "If-Match with a wrong ETag was accepted")
        except PreconditionFailed:
            check("conditional update refused for a stale ETag", True, "412")
        try:
            etag = timed(lambda: store.put(key, b"probe-4", if_match=etag))
            check("conditional update accepted for the current ETag", True, "accepted")
        except PreconditionFailed:
            check("conditional update accepted for the current ETag", False, "If-Match with the current ETag failed")
        got = timed(lambda: store.get(key, if_none_match=etag))
        check("read", got is not None, "object readable" if got is not None else "object missing after write")
        for _ in range(latency_samples):
            timed(lambda: store.get(key, if_none_match=etag))
        # Informational: a store answering 200 instead of 304 costs bandwidth, not safety.
        res.checks.append(("etag-conditional GET (304)", True,
                           "supported" if got is NOT_MODIFIED else "not supported: full reads every poll"))
    except S3PeerError as e:
        res.error = e
    finally:
        if created:
            # A leftover probe key is harmless; it lives under its own prefix.
            with contextlib.suppress(S3PeerError):
                store.delete(key)
    return res
