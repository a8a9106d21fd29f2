"""A DR pair for scenario tests: both clusters configured, both operators and both VRG simulators running.

Each test gets a private S3 server (so stopping it disturbs no one), a fresh
application namespace on both clusters, and its own log directory; on failure
the tails of the operator logs are printed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from e2e import harness
from e2e.localenv import LocalEnv
from e2e.localenv.clients import Cluster, s3_client


@dataclass
class DRPair:
    clusters: dict[str, Cluster]
    namespace: str
    env: LocalEnv
    logdir: Path
    timing: harness.Timing
    operators: dict[str, harness.Process] = field(default_factory=dict)
    simulators: dict[str, harness.Process] = field(default_factory=dict)

    @property
    def s3(self) -> Any:
        return s3_client(self.env.s3)

    def protect(self, preferred: str = "east", on: tuple[str, ...] = ("east", "west"), volsync: bool = False,
                name: str = "app", sync: bool = False) -> None:
        for c in on:
            self.clusters[c].custom.create_namespaced_custom_object(
                harness.GROUP, harness.VERSION, self.namespace, "drcontrols",
                harness.drcontrol(self.namespace, name, preferred, volsync, sync))

    def drc(self, cluster: str, name: str = "app") -> dict[str, Any]:
        return harness.get_drc(self.clusters[cluster], self.namespace, name)

    def vrg(self, cluster: str, name: str = "app") -> dict[str, Any] | None:
        return harness.get_vrg(self.clusters[cluster], self.namespace, name)

    def table(self) -> str:
        rows = []
        for c in self.clusters:
            try:
                rows.append(harness.summary_row(c, self.drc(c), self.vrg(c)))
            except Exception as e:
                rows.append({"cluster": c, "role": f"error: {e}"[:60], "generation": "", "phase": "", "ready": "",
                             "vrg": "", "peer": "", "lastAction": ""})
        return harness.format_table(rows)

    def diagnostics(self) -> str:
        parts = [self.table()]
        for p in (*self.operators.values(), *self.simulators.values()):
            parts.append(f"--- {p.name} ({'running' if p.running() else 'stopped'}) ---\n{p.tail(15)}")
        return "\n".join(parts)

    def wait(self, pred: Callable[[], bool], what: str, timeout: float = 60) -> float:
        return harness.wait_for(pred, timeout, what, self.diagnostics)

    def primary_ready(self, cluster: str, generation: int) -> bool:
        return harness.primary_ready(self.clusters[cluster], self.namespace, generation)

    def secondary_settled(self, cluster: str, generation: int) -> bool:
        return harness.secondary_settled(self.clusters[cluster], self.namespace, generation)

    def protect_on_east(self, volsync: bool = False) -> None:
        """Protect the app with east preferred and wait until both sides settle at generation 1."""
        self.protect(preferred="east", volsync=volsync)
        self.wait(lambda: self.primary_ready("east", 1), "east Primary at generation 1")
        self.wait(lambda: self.secondary_settled("west", 1), "west Secondary at generation 1")


@contextlib.contextmanager
def running_pair(clusters: dict[str, Cluster], namespace: str, env: LocalEnv, logdir: Path,
                 request: pytest.FixtureRequest, simulator_s3: dict[str, Path] | None = None,
                 on_failure: Callable[[], str] = lambda: "") -> Iterator[DRPair]:
    """Both operators (and, given where each uploads, both VRG simulators) for one test's namespace.

    On failure the pair's diagnostics and `on_failure()` are printed; at the end everything is
    stopped and the test's DRControls are removed.
    """
    pair = DRPair(clusters, namespace, env, logdir, harness.Timing())
    for name, c in clusters.items():
        if simulator_s3 is not None:
            pair.simulators[name] = harness.simulator_process(name, c.kubeconfig, simulator_s3[name], logdir,
                                                              pair.timing)
        # Tests share the clusters: each pair of operators watches only its own test's namespace.
        pair.operators[name] = harness.operator_process(name, c.kubeconfig, logdir, pair.timing,
                                                        ["--watch-namespace", namespace])
    for p in (*pair.simulators.values(), *pair.operators.values()):
        p.start()
    try:
        yield pair
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(pair.diagnostics())
            print(on_failure())
        for p in (*pair.operators.values(), *pair.simulators.values()):
            p.stop()
        for c in clusters.values():
            harness.force_delete_drcontrols(c, namespace)


@pytest.fixture
def drpair(clusters: dict[str, Cluster], namespace: str, private_env: Callable[[list[str]], LocalEnv],
           tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DRPair]:
    env = private_env([])
    for c in clusters.values():
        harness.configure_cluster(c, env.s3)
    uploads = dict.fromkeys(clusters, env.s3_config_file())
    with running_pair(clusters, namespace, env, tmp_path, request, uploads) as pair:
        yield pair


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)
