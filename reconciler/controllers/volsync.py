"""The VolSync PSK at the edge: reading the seed Secret and keeping `<vrg>-vs-secret` in the app namespace.

The derivation itself is pure (`reconciler.plan.volsync`); this module does the two reads and
the one write around it. Neither the seed nor a derived key is ever logged or put in a message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.kube import KubeClient, Obj
from reconciler.kube.errors import ApiError
from reconciler.kube.resources import ResourceType
from reconciler.plan.drcontrol import MANAGED_BY, MANAGED_BY_LABEL
from reconciler.plan.volsync import MIN_SEED_BYTES, PSK_KEY, derive_psk
from reconciler.s3peer import SecretRef

log = logging.getLogger(__name__)

SECRETS = ResourceType("", "v1", "secrets", "Secret", has_status=False)
SEED_KEY = "seed"
NOT_CONFIGURED = "no VolSync seed is configured"
#: A seed Secret that could not be read is tried again after this long, not on every reconcile.
RETRY_AFTER = 10.0


@dataclass
class VolSyncKeys:
    """The seed (read once, then kept in memory) and the PSK Secrets derived from it."""

    seed_ref: SecretRef | None = None
    read_secret: Callable[[str, str], Obj] | None = None
    clock: Callable[[], float] = time.monotonic
    _seed: bytes | None = field(default=None, repr=False)
    _problem: str = ""
    _tried_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def problem(self) -> str:
        """Why no PSK can be derived now; "" once the seed is read."""
        if self.seed_ref is None or self.read_secret is None:
            return NOT_CONFIGURED
        with self._lock:
            if self._seed is not None:
                return ""
            now = self.clock()
            if self._tried_at is not None and now - self._tried_at < RETRY_AFTER:
                return self._problem
            self._tried_at = now
            self._seed, self._problem = self._read()
            return self._problem

    def _read(self) -> tuple[bytes | None, str]:
        assert self.seed_ref is not None and self.read_secret is not None
        where = f"the VolSync seed Secret {self.seed_ref.namespace}/{self.seed_ref.name}"
        try:
            secret = self.read_secret(self.seed_ref.namespace, self.seed_ref.name)
        except ApiError as e:
            return None, f"{where} cannot be read ({'not found' if e.not_found else f'HTTP {e.status}'})"
        raw = (secret.get("data") or {}).get(SEED_KEY)
        if not isinstance(raw, str):
            return None, f"{where} has no key {SEED_KEY}"
        try:
            seed = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None, f"{where}: key {SEED_KEY} is not base64"
        if len(seed) < MIN_SEED_BYTES:
            return None, f"{where}: key {SEED_KEY} holds {len(seed)} bytes, at least {MIN_SEED_BYTES} are needed"
        return seed, ""

    def psk(self, namespace: str, vrg_name: str) -> str:
        if self.problem():
            raise ValueError(self._problem or NOT_CONFIGURED)
        assert self._seed is not None
        return derive_psk(self._seed, namespace, vrg_name)


def ensure_psk_secret(client: KubeClient, namespace: str, name: str, psk: str) -> bool:
    """Create the Secret, or put the derived key back into it; True when something was written.

    Only `data.psk.txt` is ours: Ramen adds its VRG as an owner and its own labels, and those stay.
    """
    want = base64.b64encode(psk.encode()).decode()
    try:
        live = client.get(SECRETS, name, namespace)
    except ApiError as e:
        if not e.not_found:
            raise
        client.create(SECRETS, {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
            "data": {PSK_KEY: want},
        }, namespace)
        log.info("created the VolSync PSK Secret %s", name, extra={"key": f"{namespace}/{name}"})
        return True
    if (live.get("data") or {}).get(PSK_KEY) == want:
        return False
    client.merge_patch(SECRETS, name, namespace, {"data": {PSK_KEY: want}})
    log.warning("the VolSync PSK Secret %s did not hold the derived key; rewritten", name,
                extra={"key": f"{namespace}/{name}"})
    return True
