"""The Prometheus alerting rules (config/prometheus/) and the stack's Prometheus and Alertmanager
configs, checked by Debian's real `promtool` and `amtool`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.model import Rule

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "config" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "config" / "prometheus" / "rules_test.yml"
DOCKER = ROOT / "docker"
SEVERITIES = {"critical", "warning", "info"}


def tool(name: str, package: str) -> str:
    """The tool's path; skip when it is missing, but fail under CI, which installs it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    return path


def run(command: list[str], cwd: Path = ROOT) -> str:
    """Run a checker; fail with its whole output unless it exits 0."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{output}"
    return output


def alerting_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    output = run([tool("promtool", "prometheus"), "check", "rules", str(RULES)])
    assert "SUCCESS" in output


def test_promtool_unit_tests_pass() -> None:
    output = run([tool("promtool", "prometheus"), "test", "rules", str(RULES_TEST)])
    assert "SUCCESS" in output


def test_every_alert_is_unit_tested_both_ways() -> None:
    """Each alert has a promtool case where it fires and one where it must not."""
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for name in {str(rule["alert"]) for rule in alerting_rules()}:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"{name}: no case where it fires"
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: never expected quiet"


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_says_how_urgent_and_what_to_do(rule: dict[str, object]) -> None:
    labels = rule.get("labels")
    annotations = rule.get("annotations")
    assert isinstance(labels, dict)
    assert labels.get("severity") in SEVERITIES
    assert isinstance(annotations, dict)
    assert {"summary", "description"} <= set(annotations)


def test_the_rules_watch_every_issue_6_concern() -> None:
    expressions = " ".join(str(rule["expr"]) for rule in alerting_rules())
    for metric in (
        'router_state{state="unreachable"}',
        "router_data_cap_bytes",
        "router_last_poll_success_timestamp_seconds",
        "router_monitor_poll_overruns_total",
        "router_monitor_outbox_pending",
    ):
        assert metric in expressions


def test_stack_prometheus_config_is_valid_with_these_rules(tmp_path: Path) -> None:
    """promtool checks docker/prometheus/prometheus.yml with the rules where compose mounts
    them (/etc/prometheus/rules/ there; a temporary folder here)."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir / "rules.yml")
    text = (DOCKER / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    assert "/etc/prometheus/rules/" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/", f"{rules_dir}/"), encoding="utf-8")
    output = run([tool("promtool", "prometheus"), "check", "config", str(config)])
    assert "1 rule files found" in output
    jobs = [job["job_name"] for job in yaml.safe_load(text)["scrape_configs"]]
    assert "router-monitor" in jobs  # RouterMonitorDown matches up{job="router-monitor"}


def test_stack_alertmanager_config_is_valid() -> None:
    config = DOCKER / "alertmanager" / "alertmanager.yml"
    output = run([tool("amtool", "prometheus-alertmanager"), "check-config", str(config)])
    assert "SUCCESS" in output
    # Inhibit rules name alerts: each must be one of ours or one the daemon sends itself.
    inhibits = yaml.safe_load(config.read_text(encoding="utf-8"))["inhibit_rules"]
    known = {str(rule["alert"]) for rule in alerting_rules()} | {rule.value for rule in Rule}
    for inhibit in inhibits:
        for matcher in (*inhibit["source_matchers"], *inhibit["target_matchers"]):
            name, _, value = matcher.partition("=")
            if name == "alertname":
                assert set(value.lstrip("~").strip('"').split("|")) <= known, matcher
