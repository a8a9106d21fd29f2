"""The deterministic simulation of two clusters (see tests/sim/world.py), run by `make test`.

The random schedules run in the background beside the rest of the suite (tests/sim/background.py):
SIM_SCHEDULES (default 2,000, variants mixed) and SIM_QUORUM_SCHEDULES (default 10,000, three
stores). A failing one is shrunk and printed with its seed and the command that replays it.
"""

from __future__ import annotations

import pytest

from tests.sim.background import Background
from tests.sim.mutants import MUTANTS
from tests.sim.scenarios import SCENARIOS
from tests.sim.world import describe, run_schedule, shrink

MUTANT_SEEDS = 600


def _batch_holds(simulation_batches: Background, name: str) -> None:
    figures = simulation_batches.batches[name].result()
    bad = figures["violations"]
    assert isinstance(bad, list)
    if bad:
        pytest.fail(f"{len(bad)} of {figures['schedules']} schedules violate an invariant; the first:\n{bad[0]}")
    print(f"{figures['schedules']} {name} schedules in {figures['seconds']} s beside the other tests")


@pytest.mark.timeout(3600)
def test_random_schedules_hold_every_invariant_and_converge(simulation_batches: Background) -> None:
    """SIM_SCHEDULES (2,000) random schedules, variants mixed (three stores in about 30%)."""
    _batch_holds(simulation_batches, "mixed")


@pytest.mark.timeout(3600)
def test_random_quorum_schedules_hold_every_invariant_and_converge(simulation_batches: Background) -> None:
    """SIM_QUORUM_SCHEDULES (10,000) random schedules with dr-state over three stores: acceptors lost,
    slow or failing per cluster, ambiguous writes, duelling proposers."""
    _batch_holds(simulation_batches, "quorum")


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


def test_a_background_batch_reports_the_violation_it_finds(tmp_path) -> None:
    seed = next(s for s in range(200) if run_schedule(s, mutant="promote-without-cas").violations)
    bg = Background(tmp_path, [("probe", 1, False, seed)], mutant="promote-without-cas")
    bg.start()
    figures = bg.batches["probe"].result()
    problems = figures["violations"]
    assert isinstance(problems, list) and len(problems) == 1
    problem = str(problems[0])
    assert f"seed {seed}" in problem and "VIOLATION" in problem
    assert f"replay: python bench/bench_sim.py --replay {seed}" in problem


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
