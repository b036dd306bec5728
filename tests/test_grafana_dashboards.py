"""The Grafana dashboards (docker/grafana/), their provisioning and the Compose stack around them.

The end-to-end test runs Debian's real Prometheus against the real daemon polling an emulated
fleet (`monitor demo`), then runs every panel's query, template variables filled in with real
values, through Prometheus' HTTP API: each must be valid and return data.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from test_daemon import daemon_env, free_port

from monitor.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DASHBOARDS = DOCKER / "grafana" / "dashboards"
PROVISIONING = DOCKER / "grafana" / "provisioning"
RULES = ROOT / "config" / "prometheus" / "rules.yml"
FLEET_SIZE = 24
WAIT_SECONDS = 90.0
# Grafana's built-in variables, as the panels would get them on a short time range.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300"}
# Series that legitimately do not exist yet on a young daemon: queries reading only these must
# still be valid, but may return nothing (Grafana shows "No data"; stats add `or vector(0)`).
MAY_BE_ABSENT = {
    "router_monitor_alerts_firing": "published from the first firing alert on",
    "router_monitor_support_requests": "labelled by kind and state: none before a request",
}
# Organisations of the test fleet: schools under an LA and under a trust (routers go to schools).
ORGANISATIONS = [
    {"id": "la-test", "name": "Test LA", "kind": "local_authority"},
    {"id": "trust-test", "name": "Test Trust", "kind": "academy_trust"},
    {"id": "school-a", "name": "School A", "kind": "school", "parent": "la-test"},
    {"id": "school-b", "name": "School B", "kind": "school", "parent": "la-test"},
    {"id": "school-c", "name": "School C", "kind": "school", "parent": "trust-test"},
]
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)$")
METRIC = re.compile(r"\b(router_[a-z0-9_]+)\b(?!\s*[=~!])")


# --- reading the dashboards ---------------------------------------------------------------------


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # a row's panels


def panel_targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title and refId, target) for every Prometheus query of the dashboard."""
    return [
        (f"{panel['title']} [{target['refId']}]", target)
        for panel in all_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def query_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def substitute(text: str, values: dict[str, str]) -> str:
    """Grafana's interpolation of `$name`, `${name}` and `[[name]]`; unknown names are kept."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, BUILTINS.get(name, match.group(0)))

    return VARIABLE.sub(value, text)


DASHBOARD_FILES = load_dashboards()


# --- static checks ------------------------------------------------------------------------------


def test_three_dashboards_with_unique_uids_and_titles() -> None:
    assert set(DASHBOARD_FILES) == {"fleet.json", "organisation.json", "router.json"}
    uids = [d["uid"] for d in DASHBOARD_FILES.values()]
    titles = [d["title"] for d in DASHBOARD_FILES.values()]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)
    assert all(len(uid) <= 40 for uid in uids)  # Grafana's limit


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_dashboard_is_well_formed(name: str) -> None:
    dashboard = DASHBOARD_FILES[name]
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert "datasource" in names
    ids = [panel["id"] for panel in all_panels(dashboard["panels"])]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    for panel in all_panels(dashboard["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what it shows"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    for variable in query_variables(dashboard):
        assert LABEL_VALUES.match(variable_query(variable)), variable["name"]


@pytest.mark.parametrize(
    ("name", "variable"), [("organisation.json", "organisation"), ("router.json", "router")]
)
def test_organisation_and_router_dashboards_are_templated(name: str, variable: str) -> None:
    dashboard = DASHBOARD_FILES[name]
    exprs = [t["expr"] for _, t in panel_targets(dashboard)]
    assert all(f"${variable}" in expr for expr in exprs), f"{name}: a panel ignores ${variable}"
    # Every variable narrows the panels or the choices of a later variable.
    queries = " ".join(variable_query(v) for v in query_variables(dashboard))
    for other in query_variables(dashboard):
        assert f"${other['name']}" in " ".join(exprs) + queries, other["name"]


def test_grafana_provisioning_matches_compose() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"])
    providers = yaml.safe_load(
        (PROVISIONING / "dashboards" / "router-monitor.yaml").read_text(encoding="utf-8")
    )["providers"]
    assert mounts["./grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yaml").read_text(encoding="utf-8")
    )["datasources"]
    assert datasources[0]["type"] == "prometheus"
    assert datasources[0]["url"] == "http://prometheus:9090"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{providers[0]['options']['path']}/fleet.json"


def test_compose_stack_is_complete_and_its_files_exist() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {
        "fleet", "monitor", "api", "portal", "prometheus", "alertmanager", "grafana"
    }  # fmt: skip
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} is missing"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: publish on loopback only"
    assert services["monitor"]["network_mode"] == "service:fleet"
    # `monitor api` reads the daemon's database: the same file, on the same volume.
    assert services["api"]["command"][0] == "api"
    data = "monitor-data:/var/lib/router-monitor"
    assert data in services["api"]["volumes"]
    assert data in services["monitor"]["volumes"]
    assert "monitor" in services["fleet"]["networks"]["default"]["aliases"]
    assert (
        "../config/prometheus/rules.yml:/etc/prometheus/rules/rules.yml:ro"
        in (services["prometheus"]["volumes"])
    )
    # The fleet's owners are organisations the daemon's config declares.
    config = yaml.safe_load((DOCKER / "monitor.yaml").read_text(encoding="utf-8"))
    declared = {organisation["id"] for organisation in config["organisations"]}
    owners = {
        arg.split("=", 1)[1] for arg in services["fleet"]["command"] if arg.startswith("--org")
    }
    assert owners
    assert owners <= declared


def test_compose_daemon_config_is_valid() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    environ = {
        name: "from-compose"
        for name in compose["services"]["monitor"].get("environment", {})
        if name.startswith("MONITOR_")
    }
    settings = load_settings(DOCKER / "monitor.yaml", environ)
    assert str(settings.http.listen).startswith("0.0.0.0:")  # reachable from Prometheus
    assert settings.routers == ()  # they come from the fleet, at start


def test_dockerfile_runs_unprivileged_on_a_slim_base() -> None:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert all("slim" in base for base in bases)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}
    # Everything the image copies from the context gets past the ignore file.
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        assert set(line.split()) <= allowed, line


# --- every panel against the real Prometheus and the real daemon ------------------------------


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        message = "prometheus not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    return path


@contextlib.contextmanager
def running(
    command: list[str], log: Path, cwd: Path, environ: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process logging to `log`; stop it (SIGTERM, then SIGKILL) however the test ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**daemon_env(), **(environ or {})},
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


class Prometheus:
    """The HTTP API of the test's Prometheus."""

    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, expr: str) -> tuple[str | None, list[Any]]:
        """(error or None, result) of an instant query at now."""
        reply = requests.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=10)
        body = reply.json()
        if body.get("status") != "success":
            return f"{body.get('errorType')}: {body.get('error')}", []
        data = body["data"]
        result = data["result"]
        return None, result if data["resultType"] in ("vector", "matrix") else [result]

    def label_values(self, label: str, selector: str | None) -> list[str]:
        params = {"match[]": selector} if selector else {}
        reply = requests.get(f"{self.base}/api/v1/label/{label}/values", params=params, timeout=10)
        return sorted(reply.json()["data"])

    def metric_names(self) -> set[str]:
        return set(self.label_values("__name__", None))

    def rules(self) -> list[dict[str, Any]]:
        groups = requests.get(f"{self.base}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


def wait_until(ready: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    """Poll `ready()` (a refused connection counts as not ready) for at most `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(requests.RequestException):
            if ready():
                return True
        time.sleep(0.5)
    return False


def tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}" for log in logs)


def assignments(prometheus: Prometheus, dashboard: dict[str, Any]) -> list[dict[str, str]]:
    """Ways to fill the dashboard's variables with real values, concrete values first and
    "All" last, each chained variable's values asked for under the earlier ones (at most 200)."""
    variables = query_variables(dashboard)

    def fill(index: int, chosen: dict[str, str]) -> Iterator[dict[str, str]]:
        if index == len(variables):
            yield dict(chosen)
            return
        variable = variables[index]
        match = LABEL_VALUES.match(substitute(variable_query(variable), chosen))
        assert match, variable["name"]
        values = prometheus.label_values(match["label"], match["selector"])
        assert values, f"variable {variable['name']} has no values"
        if variable.get("includeAll"):
            values.append(variable.get("allValue") or ".*")
        for value in values:
            yield from fill(index + 1, {**chosen, variable["name"]: value})

    return list(itertools.islice(fill(0, {}), 200))


def metrics_used() -> set[str]:
    return {
        name
        for dashboard in DASHBOARD_FILES.values()
        for _, target in panel_targets(dashboard)
        for name in used(target["expr"])
    }


def test_every_panel_query_returns_data(tmp_path: Path) -> None:
    binary = prometheus_binary()
    daemon_port, prometheus_port = free_port(), free_port()
    config = tmp_path / "monitor.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path}/monitor.db"},
                "http": {"listen": f"127.0.0.1:{daemon_port}"},
                "poll": {"interval": "2s", "timeout": "1500ms"},
                "organisations": ORGANISATIONS,
            }
        ),
        encoding="utf-8",
    )
    scrape = tmp_path / "prometheus.yml"
    scrape.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "router-monitor",
                        "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    daemon_log, prometheus_log = tmp_path / "daemon.log", tmp_path / "prometheus.log"
    logs = [daemon_log, prometheus_log]
    demo = [sys.executable, "-m", "monitor", "demo", "--config", str(config)]
    demo += ["--routers", str(FLEET_SIZE)]
    server = [
        binary,
        f"--config.file={scrape}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
        "--log.level=warn",
    ]
    prometheus = Prometheus(f"http://127.0.0.1:{prometheus_port}")
    with running(demo, daemon_log, tmp_path), running(server, prometheus_log, tmp_path):
        if not wait_until(lambda: requests.get(f"{prometheus.base}/-/ready", timeout=2).ok):
            pytest.fail(f"Prometheus not ready within {WAIT_SECONDS:.0f}s\n{tails(logs)}")
        wanted = metrics_used() - set(MAY_BE_ABSENT)

        def data_ready() -> bool:
            polled = prometheus.query("count(router_up)")[1]
            rated = prometheus.query("sum(rate(router_monitor_polls_total[1m])) > 0")[1]
            return (
                bool(polled)
                and float(polled[0]["value"][1]) == FLEET_SIZE
                and bool(rated)
                and wanted <= prometheus.metric_names()
            )

        if not wait_until(data_ready):
            missing = sorted(wanted - prometheus.metric_names())
            pytest.fail(
                f"no data from all {FLEET_SIZE} routers within {WAIT_SECONDS:.0f}s; metrics the"
                f" dashboards use that the daemon does not expose: {missing}\n{tails(logs)}"
            )

        problems = []
        absent = set(MAY_BE_ABSENT) - prometheus.metric_names()
        for name, dashboard in DASHBOARD_FILES.items():
            fills = assignments(prometheus, dashboard)
            for title, target in panel_targets(dashboard):
                expr = target["expr"]
                problem = check_target(prometheus, f"{name} / {title}", expr, fills)
                if problem and not (problem.startswith("no data") and used(expr) <= absent):
                    problems.append(problem)
        assert not problems, "\n".join(problems)

        # The alerting rules evaluate without error on the real series (joins included).
        def evaluated() -> bool:
            rules = prometheus.rules()
            return bool(rules) and all(rule["health"] != "unknown" for rule in rules)

        assert wait_until(evaluated), "Prometheus did not evaluate every alerting rule"
        failing = [
            (r["name"], r.get("lastError")) for r in prometheus.rules() if r["health"] != "ok"
        ]
        assert not failing


def used(expr: str) -> set[str]:
    """The router-monitor metrics a query reads."""
    return set(METRIC.findall(expr))


def check_target(
    prometheus: Prometheus, where: str, expr: str, fills: list[dict[str, str]]
) -> str | None:
    """What is wrong with one panel query: invalid under a filling, or empty under every one."""
    for values in fills:
        query = substitute(expr, values)
        assert "$" not in query, f"{where}: unknown variable in {query}"
        error, result = prometheus.query(query)
        if error:
            return f"invalid query: {where}: {query!r}: {error}"
        if result:
            return None
    return f"no data: {where} for any value of {sorted(fills[0])}: {expr!r}"


def test_compose_daemon_starts_with_the_fleets_routers(tmp_path: Path) -> None:
    """docker/fleet-entrypoint.py as the `monitor` service runs it, without Docker: it waits for
    `monitor emulate`'s fragment, adds its routers to docker/monitor.yaml and execs the daemon.
    (Only the addresses change: loopback ports, and no lookups of the stack's host names.)"""
    size, port = 6, free_port()
    config = yaml.safe_load((DOCKER / "monitor.yaml").read_text(encoding="utf-8"))
    config["notifications"]["alertmanager"] = [{"url": f"http://127.0.0.1:{free_port()}"}]
    config["support_portal"]["url"] = f"http://127.0.0.1:{free_port()}"
    base = tmp_path / "monitor.yaml"
    base.write_text(yaml.safe_dump(config), encoding="utf-8")
    fragment = tmp_path / "fleet.yaml"
    owners = ["--organisation=school-north-primary", "--organisation=school-oak-academy"]
    fleet = [sys.executable, "-m", "monitor", "emulate", f"--routers={size}", *owners]
    fleet.append(f"--write-config={fragment}")
    entrypoint = [sys.executable, str(DOCKER / "fleet-entrypoint.py"), str(base), str(fragment)]
    environ = {
        "MONITOR_HTTP__LISTEN": f"127.0.0.1:{port}",
        "MONITOR_DATABASE__URL": f"sqlite:///{tmp_path}/monitor.db",
        "MONITOR_SUPPORT_PORTAL__PASSWORD": "test-password",
        "MONITOR_POLL__INTERVAL": "2s",
        "MONITOR_POLL__TIMEOUT": "1500ms",
        "TMPDIR": str(tmp_path),  # where the merged config goes
    }
    logs = [tmp_path / "daemon.log", tmp_path / "fleet.log"]
    metrics = f"http://127.0.0.1:{port}/metrics"

    def all_polled() -> bool:
        return requests.get(metrics, timeout=2).text.count("\nrouter_up{") == size

    with (
        running([*entrypoint, str(size)], logs[0], tmp_path, environ),
        running(fleet, logs[1], tmp_path),
    ):
        if not wait_until(all_polled):
            pytest.fail(f"the daemon did not poll all {size} routers\n{tails(logs)}")
    assert f"{size} emulated routers added" in logs[0].read_text(encoding="utf-8")
