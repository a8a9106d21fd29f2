"""DRPolicy conditions for dr-state over several stores: which answer, whether a majority does.

The probe of each store is replaced by its result (what `s3peer.probe` returns against a real
store is covered in tests/integration/test_s3peer_doctor.py); this checks the verdicts.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.controllers.drpolicy import DRPolicyController
from reconciler.s3peer import ProbeResult
from reconciler.s3peer.errors import Unreachable

QUORUM = ("s3-east", "s3-west", "s3-witness")
FIT = ProbeResult(checks=[("conditional create", True, ""), ("conditional update", True, "")], latencies=[0.01])
UNFIT = ProbeResult(checks=[("conditional create", False, "second create succeeded")], latencies=[0.01])
DOWN = ProbeResult(error=Unreachable("connection refused"))


def verdicts(results: dict[str, ProbeResult | str]) -> tuple[dict[str, tuple[bool, str, str]], float | None]:
    ctl = DRPolicyController.__new__(DRPolicyController)
    ctl._probe = lambda profile, peer, quorum=(), index=None: results[QUORUM[index or 0]]  # type: ignore[method-assign]
    got: dict[str, tuple[bool, str, str]] = {}

    def cond(ctype: str, ok: bool, reason: str, message: str) -> None:
        got[ctype] = (ok, reason, message)

    requeue = ctl._quorum_conditions("s3-witness", "west", QUORUM, cond)
    return got, requeue


def test_all_stores_fit() -> None:
    got, requeue = verdicts(dict.fromkeys(QUORUM, FIT))
    assert got["S3Reachable"][:2] == (True, "Reachable")
    assert "3 of 3 coordination stores answer" in got["S3Reachable"][2]
    assert got["Validated"][0] is True and "all 3 coordination stores" in got["Validated"][2]
    assert requeue is None


def test_one_store_lost_keeps_a_majority_and_says_which() -> None:
    got, requeue = verdicts({"s3-east": DOWN, "s3-west": FIT, "s3-witness": FIT})
    assert got["S3Reachable"][:2] == (True, "Reachable")
    assert "2 of 3 coordination stores answer (unreachable: s3-east (connection refused))" in got["S3Reachable"][2]
    assert got["Validated"][0] is True
    assert requeue == 30.0  # looked at again soon, to say when it is back


def test_two_stores_lost_leave_no_majority() -> None:
    got, _ = verdicts({"s3-east": DOWN, "s3-west": DOWN, "s3-witness": FIT})
    assert got["S3Reachable"][:2] == (False, "QuorumUnavailable")
    assert "a majority of 2 is needed: roles are frozen" in got["S3Reachable"][2]


@pytest.mark.parametrize("bad", QUORUM)
def test_a_store_without_conditional_writes_is_named(bad: str) -> None:
    results: dict[str, Any] = dict.fromkeys(QUORUM, FIT)
    results[bad] = UNFIT
    got, _ = verdicts(results)
    assert got["Validated"][:2] == (False, "ConditionalWritesUnsupported")
    assert bad in got["Validated"][2]


def test_a_profile_that_cannot_be_used_is_a_configuration_problem() -> None:
    got, _ = verdicts({"s3-east": FIT, "s3-west": "S3 profile 's3-west' is not in the operator configuration",
                       "s3-witness": FIT})
    assert got["Validated"][:2] == (False, "S3Misconfigured")
    assert "s3-west: S3 profile" in got["Validated"][2]
