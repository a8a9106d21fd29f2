"""The simulation's random schedules, run beside the rest of the suite.

Thousands of schedules cost minutes of CPU, while the real-cluster suites mostly wait on API
servers and operators. So when the random-schedule tests are collected, `start()` runs
`bench/bench_sim.py` at a lower priority in the background, and each test waits for its batch
and fails with the batch's violations (seed, shrunk events, trace, replay command).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Batch:
    name: str
    schedules: int
    quorum: bool
    start: int
    out: Path
    mutant: str = ""
    returncode: int | None = None
    log: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def command(self) -> list[str]:
        cmd = [sys.executable, str(ROOT / "bench" / "bench_sim.py"), "--schedules", str(self.schedules),
               "--start", str(self.start),
               "--jobs", "2", "--nice", "10", "--json", str(self.out)]
        return cmd + (["--quorum"] if self.quorum else []) + (["--mutant", self.mutant] if self.mutant else [])

    def result(self) -> dict[str, object]:
        """Wait for the batch; its figures, or a RuntimeError saying why there are none."""
        self.done.wait()
        if not self.out.exists():
            raise RuntimeError(f"simulation batch {self.name} exited {self.returncode} without results:\n"
                               f"{self.log[-4000:]}")
        figures: dict[str, object] = json.loads(self.out.read_text())
        return figures


class Background:
    def __init__(self, workdir: Path, batches: list[tuple[str, int, bool, int]], mutant: str = "") -> None:
        """`batches`: (name, schedules, three stores only, first seed); `mutant` is for checking the checks."""
        self.workdir = workdir
        self.batches = {name: Batch(name, n, quorum, start, workdir / f"sim-{name}.json", mutant)
                        for name, n, quorum, start in batches}
        self._thread = threading.Thread(target=self._run, name="simulation", daemon=True)
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        for b in self.batches.values():
            b.out.unlink(missing_ok=True)
        self._thread.start()

    def _run(self) -> None:
        # One batch after the other: each already uses both cores.
        for b in self.batches.values():
            try:
                if self._stopped.is_set():
                    b.log = "not run: the test session ended first"
                    continue
                self._proc = subprocess.Popen(b.command(), cwd=ROOT, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True)
                out, _ = self._proc.communicate()
                b.returncode, b.log = self._proc.returncode, out
            except OSError as e:
                b.log = f"could not start: {e}"
            finally:
                b.done.set()

    def stop(self) -> None:
        """The session ends: a batch still running (its test deselected, or the run cut short) stops."""
        self._stopped.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
