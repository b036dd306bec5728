"""load_settings: defaults, the example file, environment overrides and every kind of mistake."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from monitor.cli import main
from monitor.config import Settings, load_settings
from monitor.errors import ConfigError
from monitor.model import Protocol

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "monitor.example.yaml"

ROUTER = {
    "id": "r-1",
    "imei": "867098031000017",
    "serial": "S-1",
    "order_number": "ORD-1",
    "organisation": "la-1",
    "protocol": "snmp",
    "host": "127.0.0.1",
    "profile": "teltonika-rutos7",
    "snmp": {"version": "2c", "community": "public"},
}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def problems(tmp_path: Path, data: Any, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, data), environ or {})
    return [str(problem) for problem in caught.value.problems]


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, {})
    assert settings.database.url == "sqlite:///var/monitor.db"
    assert str(settings.http.listen) == "127.0.0.1:8080"
    assert settings.poll.interval == timedelta(seconds=60)
    assert settings.timezone == "Europe/London"
    assert settings.data_cap.bytes == 20_000_000_000
    assert settings.routers == ()


def test_empty_file_and_empty_sections_mean_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), {}) == load_settings(None, {})
    assert load_settings(write(tmp_path, "routers:\npoll:\n"), {}) == load_settings(None, {})


def test_example_file_is_valid() -> None:
    settings = load_settings(EXAMPLE, {})
    assert {router.protocol for router in settings.routers} == {Protocol.SNMP, Protocol.HILINK}
    v3 = next(router for router in settings.routers if router.id == "demo-snmp-v3-1")
    assert v3.snmp is not None
    assert (v3.snmp.version, v3.snmp.auth_protocol, v3.snmp.priv_protocol) == (
        "3",
        "SHA-256",
        "AES",
    )
    hilink = next(router for router in settings.routers if router.protocol is Protocol.HILINK)
    assert hilink.to_model().endpoint is not None


def _key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        paths.append(prefix + name)
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        for candidate in (annotation, *args):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                paths.extend(_key_paths(candidate, f"{prefix}{name}."))
    return paths


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [path for path in _key_paths(Settings) if path.rsplit(".", 1)[-1] not in text]
    assert missing == []


def test_every_problem_in_one_report(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "poll": {"interval": "soon", "concurrency": 0},
            "http": {"listen": "8080"},
            "timezone": "Mars/Olympus",
            "data_cap": {"bytes": "lots"},
            "database": {"url": "mysql://x/y"},
        },
    )
    assert found == [
        "database.url: must start with sqlite:// or postgresql:// (psycopg 3)",
        "http.listen: must be host:port, such as 127.0.0.1:8080 or [::1]:8080",
        "poll.interval: must be a duration like 60s, 5m or 1h30m",
        "poll.concurrency: must be at least 1",
        "timezone: unknown time zone 'Mars/Olympus'; use an IANA name",
        "data_cap.bytes: must be a size like 20GB, 500MB or a number of bytes",
    ]


def test_timeout_must_be_shorter_than_interval(tmp_path: Path) -> None:
    found = problems(tmp_path, {"poll": {"interval": "30s", "timeout": "30s"}})
    assert found == ["poll: timeout must be more than 0s and shorter than interval"]


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    [found] = problems(tmp_path, {"poll": {"intreval": "60s"}})
    assert found.startswith("poll.intreval: unknown key (did you mean 'interval'?)")


def test_router_problems_name_the_router(tmp_path: Path) -> None:
    bad = {**ROUTER, "imei": "867098031000018", "protocol": "telnet", "port": 70000}
    found = problems(tmp_path, {"routers": [ROUTER | {"id": "ok", "serial": "S-0"}, bad]})
    assert found == [
        "routers[1].imei (id r-1): check digit is wrong (Luhn): is a digit mistyped?",
        "routers[1].protocol (id r-1): must be one of 'snmp' or 'hilink'",
        "routers[1].port (id r-1): must be at most 65535",
    ]


@pytest.mark.parametrize(
    ("snmp", "reason"),
    [
        ({"version": "2c"}, "community is required for SNMP v2c"),
        ({"version": "2c", "community": "c", "user": "u"}, "user only apply to SNMP v3"),
        ({"version": 3}, "user is required for SNMP v3"),
        ({"version": 3, "user": "u", "auth_protocol": "SHA"}, "auth_protocol and auth_key go"),
        (
            {"version": 3, "user": "u", "priv_protocol": "AES", "priv_key": "12345678"},
            "privacy needs authentication",
        ),
        ({"version": 1, "community": "c"}, "must be one of '2c' or '3'"),
        (
            {"version": 3, "user": "u", "auth_protocol": "SHA1", "auth_key": "12345678"},
            "must be one of 'MD5', 'SHA'",
        ),
    ],
)
def test_snmp_credentials(tmp_path: Path, snmp: dict[str, Any], reason: str) -> None:
    [found] = problems(tmp_path, {"routers": [ROUTER | {"snmp": snmp}]})
    assert found.startswith("routers[0]")
    assert reason in found


def test_credentials_must_match_protocol(tmp_path: Path) -> None:
    hilink = ROUTER | {"protocol": "hilink"}
    assert problems(tmp_path, {"routers": [hilink]}) == [
        "routers[0] (id r-1): snmp: credentials only apply to protocol snmp"
    ]
    no_snmp = {k: v for k, v in ROUTER.items() if k != "snmp"}
    assert problems(tmp_path, {"routers": [no_snmp]}) == [
        "routers[0] (id r-1): protocol snmp needs an snmp: section with credentials"
    ]


def test_missing_required_keys(tmp_path: Path) -> None:
    found = problems(tmp_path, {"routers": [{"id": "r-9"}], "organisations": [{"kind": "school"}]})
    assert "organisations[0].id: is required" in found
    assert "routers[0].imei (id r-9): is required" in found
    assert "routers[0].order_number (id r-9): is required" in found


def test_duplicates_and_parent_kinds(tmp_path: Path) -> None:
    orgs = [
        {"id": "la-1", "name": "LA", "kind": "local_authority"},
        {"id": "s-1", "name": "School", "kind": "school", "parent": "s-2"},
        {"id": "s-2", "name": "School 2", "kind": "school", "parent": "la-1"},
        {"id": "t-1", "name": "Trust", "kind": "academy_trust", "parent": "la-1"},
        {"id": "s-3", "name": "Self", "kind": "school", "parent": "s-3"},
    ]
    twin = ROUTER | {"id": "r-2", "serial": "S-2"}
    found = problems(tmp_path, {"organisations": orgs, "routers": [ROUTER, twin]})
    assert found == [
        "routers[1].imei (id r-2): duplicates routers[0].imei",
        "organisations[1].parent (id s-1): the parent of a school must be an academy_trust or "
        "local_authority, not a school",
        "organisations[3].parent (id t-1): a academy_trust has no parent organisation",
        "organisations[4].parent (id s-3): an organisation cannot be its own parent",
    ]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"poll": {"interval": "60s"}, "routers": [ROUTER]})
    settings = load_settings(
        path,
        {
            "MONITOR_POLL__INTERVAL": "5m",
            "MONITOR_POLL__CONCURRENCY": "50",
            "MONITOR_DATABASE__URL": "postgresql://u:pw@127.0.0.1/db",
            "MONITOR_ROUTERS__R_1__SNMP__COMMUNITY": "from-env",
            "MONITOR_TEST_POSTGRES_URL": "ignored: no double underscore",
            "PATH": "/usr/bin",
        },
    )
    assert settings.poll.interval == timedelta(minutes=5)
    assert settings.poll.concurrency == 50
    assert settings.database.url == "postgresql+psycopg://u:pw@127.0.0.1/db"
    community = settings.routers[0].snmp.community  # type: ignore[union-attr]
    assert community is not None
    assert community.get_secret_value() == "from-env"


def test_environment_problems_name_the_variable(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {"routers": [ROUTER]},
        {
            "MONITOR_POLL__CONCURRENCY": "many",
            "MONITOR_ROUTERS__NOPE__HOST": "x",
            "MONITOR_NOSUCH__KEY": "1",
            "MONITOR_DATABASE__URL__DEEPER": "x",
        },
    )
    assert "poll.concurrency (from MONITOR_POLL__CONCURRENCY): must be a whole number" in found
    assert "MONITOR_ROUTERS__NOPE__HOST: no entry with id 'nope' in routers" in found
    assert any(p.startswith("nosuch (from MONITOR_NOSUCH__KEY): unknown key") for p in found)
    assert "database.url (from MONITOR_DATABASE__URL__DEEPER): must be text" in found


def test_secrets_never_reach_errors_or_repr(tmp_path: Path) -> None:
    secret = "hunter2"  # shorter than USM's 8-character minimum, so it is rejected
    snmp = {"version": 3, "user": "u", "auth_protocol": "SHA", "auth_key": secret}
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, {"routers": [ROUTER | {"snmp": snmp}]}), {})
    assert secret not in str(caught.value)
    settings = load_settings(
        write(tmp_path, {"routers": [ROUTER | {"snmp": {**snmp, "auth_key": secret * 2}}]}),
        {"MONITOR_DATABASE__URL": f"postgresql://u:{secret}@127.0.0.1/db"},
    )
    assert secret not in repr(settings)
    assert secret not in str(settings)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        poll:
          interval: 60s
         timeout: [
        """
    )
    [found] = problems(tmp_path, text)
    assert found.startswith("line 3, column 2: invalid YAML")


@pytest.mark.parametrize(("text", "reason"), [("- a\n- b\n", "must be a YAML mapping")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, reason: str) -> None:
    [found] = problems(tmp_path, text)
    assert reason in found


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: No such file"):
        load_settings(tmp_path / "absent.yaml", {})


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "OK (4 organisations, 3 routers" in capsys.readouterr().out
    bad = write(tmp_path, {"poll": {"interval": "x", "timeout": "y"}})
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "poll.interval: must be a duration like 60s" in err
    assert "poll.timeout: must be a duration like 60s" in err


def test_check_config_as_a_module(tmp_path: Path) -> None:
    bad = write(tmp_path, {"http": {"listen": "nowhere"}})
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "http.listen: must be host:port" in done.stderr
