"""Who may read /metrics: the Kubernetes API decides (TokenReview, then SubjectAccessReview).

A scraper presents a bearer token (a ServiceAccount token, as Prometheus does); the
API server says whose it is and whether that identity may `get` the non-resource
URL `/metrics`, the same rule kube-rbac-proxy and controller-runtime apply.
Decisions are cached briefly by a hash of the token so a scrape costs no API call.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.kube import KubeClient, ResourceType
from reconciler.kube.errors import ApiError

TOKENREVIEWS = ResourceType("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False,
                            has_status=False)
SUBJECTACCESSREVIEWS = ResourceType("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview",
                                    namespaced=False, has_status=False)


@dataclass(frozen=True)
class Decision:
    status: int  # 200, 401 or 403 (429 over the review rate, 503 when the API server cannot be asked)
    reason: str


class KubeAuthorizer:
    def __init__(self, client: KubeClient, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 reviews_per_second: float = 5.0, review_burst: int = 20) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, Decision]] = {}
        # Every token not in the cache costs a TokenReview: a client sending a new bad token per
        # request must not turn /metrics into a load generator for the API server.
        self._rate = reviews_per_second
        self._burst = float(review_burst)
        self._tokens = float(review_burst)
        self._refilled = clock()

    def _may_review(self, now: float) -> bool:
        with self._lock:
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def decide(self, authorization: str | None, path: str) -> Decision:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Decision(401, "a bearer token is required")
        key = (hashlib.sha256(token.strip().encode()).hexdigest(), path)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        if not self._may_review(now):
            return Decision(429, "too many tokens to check right now; retry later")
        decision = self._ask(token.strip(), path)
        if decision.status != 503:  # an API outage is not remembered
            with self._lock:
                if len(self._cache) > 1000:
                    self._cache.clear()
                self._cache[key] = (now + self.ttl, decision)
        return decision

    def _ask(self, token: str, path: str) -> Decision:
        try:
            review = self.client.create(TOKENREVIEWS, {"apiVersion": "authentication.k8s.io/v1",
                                                       "kind": "TokenReview", "spec": {"token": token}})
            st = review.get("status") or {}
            if not st.get("authenticated"):
                return Decision(401, "the token is not valid")
            user = st.get("user") or {}
            sar = self.client.create(SUBJECTACCESSREVIEWS, {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.get("username", ""),
                    "uid": user.get("uid", ""),
                    "groups": user.get("groups", []),
                    "extra": user.get("extra", {}),
                    "nonResourceAttributes": {"path": path, "verb": "get"},
                },
            })
        except ApiError as e:
            return Decision(503, f"cannot check the token with the API server: {e.reason}")
        if (sar.get("status") or {}).get("allowed"):
            return Decision(200, "allowed")
        return Decision(403, f"{user.get('username', 'this identity')} may not get {path}")
