"""Run the deterministic two-cluster simulation at scale and print its throughput.

    .venv/bin/python bench/bench_sim.py [--schedules 100000] [--jobs 2] [--start 0]
    .venv/bin/python bench/bench_sim.py --replay SEED     # print one schedule's events and trace

Prints schedules per second, the violations found (each with its seed, shrunk), and a progress
line every 5,000 schedules.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sim.world import describe, run_schedule, shrink


def _run(seed: int) -> tuple[int, str]:
    out = run_schedule(seed)
    if not out.violations:
        return seed, ""
    return seed, describe(out) + f"\nshrunk: {shrink(out)}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schedules", type=int, default=100_000)
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    p.add_argument("--replay", type=int, default=None, help="run one seed and print its trace")
    args = p.parse_args()
    if args.replay is not None:
        out = run_schedule(args.replay)
        print("\n".join(out.trace))
        print(describe(out))
        return 1 if out.violations else 0
    started = time.monotonic()
    bad: list[str] = []
    seeds = range(args.start, args.start + args.schedules)
    with multiprocessing.Pool(args.jobs) as pool:
        for done, (seed, problem) in enumerate(pool.imap_unordered(_run, seeds, chunksize=50), 1):
            if problem:
                bad.append(problem)
                print(f"VIOLATION at seed {seed}:\n{problem}", flush=True)
            if done % 5000 == 0:
                rate = done / (time.monotonic() - started)
                print(f"[sim] {done}/{args.schedules} schedules, {rate:.1f}/s, {len(bad)} violating", flush=True)
    elapsed = time.monotonic() - started
    print(f"schedules: {args.schedules}  jobs: {args.jobs}  seconds: {elapsed:.1f}  "
          f"schedules/s: {args.schedules / elapsed:.1f}  violating: {len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
