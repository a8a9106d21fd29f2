"""The deterministic simulation of two clusters (see tests/sim/world.py), run by `make test`.

SIM_SCHEDULES (default 2000) sets how many random schedules run; a failing one is shrunk and
printed with its seed, so it can be replayed with `python bench/bench_sim.py --replay SEED`.
"""

from __future__ import annotations

import os

import pytest

from tests.sim.mutants import MUTANTS
from tests.sim.scenarios import SCENARIOS
from tests.sim.world import describe, run_schedule, shrink

SCHEDULES = int(os.environ.get("SIM_SCHEDULES", "2000"))
MUTANT_SEEDS = 600


def test_random_schedules_hold_every_invariant_and_converge() -> None:
    for seed in range(SCHEDULES):
        out = run_schedule(seed)
        if out.violations:
            small = shrink(out)
            again = run_schedule(seed, small, out.variant)
            pytest.fail(f"{describe(out)}\nshrunk to {len(small)} events: {small}\n"
                        + "\n".join(again.trace[-80:]) + f"\nreplay: python bench/bench_sim.py --replay {seed}")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_of_a_found_defect_runs_clean(name: str) -> None:
    variant, events, before = SCENARIOS[name]
    out = run_schedule(0, list(events), variant)
    assert not out.violations, f"{name} (failed with {before} before its fix):\n{describe(out)}\n" + \
        "\n".join(out.trace[-60:])


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_injected_bug_is_caught(name: str) -> None:
    invariant = MUTANTS[name][3]
    for _scenario, (variant, events, _) in sorted(SCENARIOS.items()):
        if any(v.invariant == invariant for v in run_schedule(0, list(events), variant, mutant=name).violations):
            return
    for seed in range(MUTANT_SEEDS):
        if any(v.invariant == invariant for v in run_schedule(seed, mutant=name).violations):
            return
    pytest.fail(f"mutant {name} escaped {invariant} in every scenario and {MUTANT_SEEDS} random schedules")


def test_a_schedule_replays_identically() -> None:
    first, second = run_schedule(1234), run_schedule(1234)
    assert first.events == second.events
    assert [t for t in first.trace if "nonce" not in t] == [t for t in second.trace if "nonce" not in t]


def test_a_failing_schedule_shrinks_to_a_few_events_that_still_fail() -> None:
    seed = next(s for s in range(200) if run_schedule(s, mutant="promote-without-cas").violations)
    out = run_schedule(seed, mutant="promote-without-cas")
    small = shrink(out, mutant="promote-without-cas")
    assert len(small) < len(out.events)
    assert run_schedule(seed, small, out.variant, mutant="promote-without-cas").violations
