"""Run the deterministic two-cluster simulation at scale and print its throughput.

    .venv/bin/python bench/bench_sim.py [--schedules 100000] [--jobs 2] [--start 0] [--quorum]
    .venv/bin/python bench/bench_sim.py --replay SEED [--quorum]   # one schedule's events and trace

Prints schedules per second, the violations found (each with its seed, shrunk), and a progress
line every 5,000 schedules. `--quorum` runs every schedule with dr-state over three stores;
`--json FILE` also writes the figures and the violations there (what `make test` reads).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sim.world import describe, run_schedule, shrink


def _run(seed: int, quorum: bool | None, mutant: str) -> tuple[int, str]:
    out = run_schedule(seed, quorum=quorum, mutant=mutant)
    if not out.violations:
        return seed, ""
    small = shrink(out, mutant=mutant)
    again = run_schedule(seed, small, out.variant, mutant=mutant)
    replay = f"python bench/bench_sim.py --replay {seed}" + (" --quorum" if quorum else "") + \
        (f" --mutant {mutant}" if mutant else "")
    return seed, (describe(out) + f"\nshrunk to {len(small)} events: {small}\n" + "\n".join(again.trace[-80:])
                  + f"\nreplay: {replay}")


def _lower_priority(niceness: int) -> None:
    if niceness:
        os.nice(niceness)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schedules", type=int, default=100_000)
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    p.add_argument("--quorum", action="store_true", help="every schedule with dr-state over three stores")
    p.add_argument("--nice", type=int, default=0, help="run the workers at this lower priority")
    p.add_argument("--mutant", default="", help="inject this known bug (tests/sim/mutants.py) to see it caught")
    p.add_argument("--json", type=Path, default=None, help="write figures and violations to this file")
    p.add_argument("--replay", type=int, default=None, help="run one seed and print its trace")
    args = p.parse_args()
    quorum = True if args.quorum else None
    if args.replay is not None:
        out = run_schedule(args.replay, quorum=quorum, mutant=args.mutant)
        print("\n".join(out.trace))
        print(describe(out))
        return 1 if out.violations else 0
    started = time.monotonic()
    bad: list[str] = []
    seeds = range(args.start, args.start + args.schedules)
    work = functools.partial(_run, quorum=quorum, mutant=args.mutant)
    with multiprocessing.Pool(args.jobs, initializer=_lower_priority, initargs=(args.nice,)) as pool:
        for done, (seed, problem) in enumerate(pool.imap_unordered(work, seeds, chunksize=50), 1):
            if problem:
                bad.append(problem)
                print(f"VIOLATION at seed {seed}:\n{problem}", flush=True)
            if done % 5000 == 0:
                rate = done / (time.monotonic() - started)
                print(f"[sim] {done}/{args.schedules} schedules, {rate:.1f}/s, {len(bad)} violating", flush=True)
    elapsed = time.monotonic() - started
    print(f"schedules: {args.schedules}  jobs: {args.jobs}  seconds: {elapsed:.1f}  "
          f"schedules/s: {args.schedules / elapsed:.1f}  violating: {len(bad)}")
    if args.json is not None:
        args.json.write_text(json.dumps({"schedules": args.schedules, "start": args.start, "quorum": args.quorum,
                                         "seconds": round(elapsed, 1), "violations": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
