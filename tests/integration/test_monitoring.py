"""The alerts and the dashboard, checked by the real promtool against the metrics the operator exports.

promtool is built from github.com/prometheus/prometheus by `make build` (e2e/localenv/build.py); a
missing binary fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.localenv.build import binaries
from reconciler.install import InstallOptions, documents, objects_of_kind, render_install
from reconciler.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
METRIC = re.compile(r"\bramen_p2p_[a-z_]+\b")


@pytest.fixture(scope="module")
def promtool() -> Path:
    path = binaries().promtool
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make build` (it builds promtool from its Go module)")
    return path


def run(promtool: Path, *args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def exported_names() -> set[str]:
    """Every series name the operator's registry can produce (counters and histograms with suffixes)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in ("_total", "_bucket", "_count", "_sum", "_created"))
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads((MONITORING / "dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_promtool_accepts_the_alert_rules(promtool: Path) -> None:
    out = run(promtool, "check", "rules", "alerts.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout + out.stderr


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say(promtool: Path) -> None:
    out = run(promtool, "test", "rules", "alerts_test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    # Every alert has a test case: promtool says nothing about untested ones, so count them here.
    tests = yaml.safe_load((MONITORING / "alerts_test.yaml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])}
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert tested == {r["alert"] for g in rules["groups"] for r in g["rules"]}


def test_a_wrong_expectation_makes_promtool_test_rules_fail(promtool: Path, tmp_path: Path) -> None:
    # The unit tests can fail: the same file with one expectation inverted must not pass.
    (tmp_path / "alerts.yaml").write_text((MONITORING / "alerts.yaml").read_text())
    broken = (MONITORING / "alerts_test.yaml").read_text().replace(
        "  - eval_time: 3m\n    alertname: RamenP2PPeerHeartbeatStale\n    exp_alerts: []",
        "  - eval_time: 3m\n    alertname: RamenP2PPeerHeartbeatStale\n    exp_alerts:\n"
        "    - exp_labels: {severity: warning, peer: east, instance: \"west:8080\", job: ramen-p2p}", 1)
    assert broken != (MONITORING / "alerts_test.yaml").read_text()
    (tmp_path / "alerts_test.yaml").write_text(broken)
    out = run(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert out.returncode != 0


def test_every_dashboard_query_is_valid_promql(promtool: Path, tmp_path: Path) -> None:
    # promtool parses PromQL only inside rule files: each panel query becomes a recording rule.
    rules: list[dict[str, Any]] = [
        {"record": f"dashboard:panel_{i}", "expr": e.replace("$instance", ".*")}
        for i, e in enumerate(dashboard_exprs())
    ]
    (tmp_path / "dashboard_rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    out = run(promtool, "check", "rules", "dashboard_rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(rules) >= 12


def test_alerts_and_dashboard_use_only_metrics_the_operator_exports() -> None:
    names = exported_names()
    used = {m for e in alert_exprs() + dashboard_exprs() for m in METRIC.findall(e)}
    assert used, "no ramen_p2p metric referenced"
    assert used <= names, f"not exported by reconciler/metrics.py: {sorted(used - names)}"


def test_the_install_bundle_carries_the_checked_rules_and_dashboard_only_when_asked() -> None:
    opts = dict(cluster_name="east", peer="west", s3_endpoint="http://s3.example:9000", include_crds=False)
    plain = documents(render_install(InstallOptions(**opts)))  # type: ignore[arg-type]
    assert not objects_of_kind(plain, "PrometheusRule")
    docs = documents(render_install(InstallOptions(**opts, with_monitoring=True)))  # type: ignore[arg-type]
    [rule] = objects_of_kind(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    [monitor] = objects_of_kind(docs, "ServiceMonitor")
    [service] = [d for d in objects_of_kind(docs, "Service") if d["metadata"]["name"].endswith("-metrics")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    [board] = [d for d in objects_of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert json.loads(board["data"]["ramen-p2p.json"]) == json.loads((MONITORING / "dashboard.json").read_text())
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
