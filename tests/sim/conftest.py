"""Starts the simulation's random-schedule batches in the background once they are collected."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.sim.background import Background

# How many random schedules `make test` runs: mixed variants, and the three-store variant alone
# (from another first seed, so the two batches do not repeat each other's three-store schedules).
SCHEDULES = int(os.environ.get("SIM_SCHEDULES", "2000"))
# Sized so the whole suite stays near 20 minutes warm on two cores (the batches compete with the
# real-cluster suites for CPU); `make bench-sim` runs 100,000.
QUORUM_SCHEDULES = int(os.environ.get("SIM_QUORUM_SCHEDULES", "4000"))
BATCH_TESTS = {"test_random_schedules_hold_every_invariant_and_converge": ("mixed", SCHEDULES, False, 0),
               "test_random_quorum_schedules_hold_every_invariant_and_converge": ("quorum", QUORUM_SCHEDULES, True,
                                                                                    1_000_000)}

_background: Background | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    global _background
    wanted = [BATCH_TESTS[item.name] for item in session.items if item.name in BATCH_TESTS]
    if wanted:
        _background = Background(Path(tempfile.mkdtemp(prefix="ramen-p2p-sim-")), wanted)
        _background.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _background is not None:
        _background.stop()
        shutil.rmtree(_background.workdir, ignore_errors=True)


@pytest.fixture
def simulation_batches() -> Background:
    if _background is None:
        raise RuntimeError("the simulation batches were not started (no batch test collected)")
    return _background
