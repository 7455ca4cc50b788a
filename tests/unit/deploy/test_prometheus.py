"""deploy/prometheus: the rules and alerts through promtool, their unit tests, the runbooks,
and the example Alertmanager routing through amtool. No network, no Prometheus server."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTMANAGER = PROMETHEUS_DIR / "alertmanager.yml"
UNIT_TESTS = Path(__file__).parent / "prometheus" / "alerts_test.yml"


def _rules(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


ALERT_RULES = _rules(ALERTS)
ALERT_NAMES = [rule["alert"] for rule in ALERT_RULES]


def test_promtool_check_rules(promtool, run) -> None:
    result = run([promtool, "check", "rules", str(RULES), str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass(promtool) -> None:
    # About 2 s of CPU; the bound is generous for a loaded machine (run's is 60 s).
    result = subprocess.run([promtool, "test", "rules", str(UNIT_TESTS)], capture_output=True, text=True,
                            timeout=600, cwd=ROOT, env={"PATH": os.environ.get("PATH", "")})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issue_s_alerts_are_all_there() -> None:
    assert sorted(ALERT_NAMES) == sorted([
        "DriftlineConceptDrift", "DriftlineFeatureDriftShareHigh", "DriftlineMetricBelowBand",
        "DriftlineNoPredictions", "DriftlineJoinExpiriesHigh", "DriftlineConsumerLagGrowing",
        "DriftlineModelStale", "DriftlineSnapshotFailures", "DriftlineCanaryWorseThanChampion",
        "DriftlineVersionRefused", "DriftlineStalePredictions", "DriftlineTrainerStalled", "DriftlineKeyChurn",
    ])


@pytest.mark.parametrize("rule", ALERT_RULES, ids=ALERT_NAMES)
def test_every_alert_has_for_severity_and_annotations(rule: dict) -> None:
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    assert rule["annotations"]["runbook_url"] == f"docs/runbooks/{rule['alert']}.md"


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_has_a_runbook(name: str) -> None:
    path = ROOT / "docs" / "runbooks" / f"{name}.md"
    assert path.exists(), f"no runbook {path.relative_to(ROOT)}"
    text = path.read_text()
    assert text.startswith(f"# {name}\n")
    for section in ("## What it means", "## How to check", "## What to do"):
        assert section in text, f"{path.name} lacks {section!r}"


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_is_unit_tested_firing_silent_and_resolved(name: str) -> None:
    """At least one evaluation where it fires, and one before it (silent) and one after
    (resolved) in the same test case, with no stray alert of another model."""
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    checks = [c for case in cases for c in case.get("alert_rule_test", []) if c["alertname"] == name]
    assert checks, f"{name} has no promtool unit test"
    firing = [c for c in checks if c["exp_alerts"]]
    assert firing, f"{name} is never shown firing"
    first, last = min(_minutes(c["eval_time"]) for c in firing), max(_minutes(c["eval_time"]) for c in firing)
    silent = [c for c in checks if not c["exp_alerts"]]
    assert any(_minutes(c["eval_time"]) < first for c in silent), f"{name}: no silent evaluation before it fires"
    assert any(_minutes(c["eval_time"]) > last for c in silent), f"{name}: no evaluation after it fired (resolution)"
    for check in firing:
        for alert in check["exp_alerts"]:
            assert {"summary", "description", "runbook_url"} <= set(alert.get("exp_annotations", {}))


def _minutes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([mh])", value).groups()
    return int(number) * (60 if unit == "h" else 1)


def test_recording_rules_are_named_level_metric_operations() -> None:
    for rule in _rules(RULES):
        assert re.fullmatch(r"[a-z_]+:driftline_[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_rules_read_only_metrics_the_processor_exports(exported_metrics, selector_names) -> None:
    recorded = {rule["record"] for rule in _rules(RULES)}
    for rule in _rules(RULES) + ALERT_RULES:
        unknown = selector_names(rule["expr"]) - exported_metrics - recorded
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads {sorted(unknown)}"


def test_amtool_accepts_the_example_routing(amtool, run) -> None:
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_routing_has_a_route_for_every_severity() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    routed = {m.split("=")[1].strip('"') for r in config["route"]["routes"] for m in r.get("matchers", [])
              if m.startswith("severity=")}
    assert {rule["labels"]["severity"] for rule in ALERT_RULES} <= routed


def test_promtool_accepts_the_example_prometheus_config(promtool, run) -> None:
    result = run([promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERT_RULES, ids=ALERT_NAMES)
def test_amtool_routes_each_alert_by_its_severity(amtool, run, rule: dict) -> None:
    receiver = {"critical": "driftline-pager", "warning": "driftline-tickets", "info": "driftline-ml-channel"}
    result = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                  f"alertname={rule['alert']}", f"severity={rule['labels']['severity']}", "model=elec"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [receiver[rule["labels"]["severity"]]]
