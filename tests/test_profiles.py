"""Loading and validating the model profiles in config/profiles/."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.model import CounterType, UptimeClock
from monitor.profiles import SnmpProfile, load_profiles
from monitor.profiles_hilink import HilinkProfile

SHIPPED = Path(__file__).parent.parent / "config" / "profiles"
SNMP_MODELS = ["teltonika-rutos7", "teltonika-legacy", "cisco-cellular", "mikrotik-lte", "if-mib"]

GOOD = """\
protocol: snmp
tables:
  modem: {row: first}
fields:
  imei: {oid: 1.3.6.1.4.1.9.1.3, table: modem}
  sinr_db: {oid: 1.3.6.1.4.1.9.1.4, table: modem, scale: 0.1}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_profiles(directory)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("name", SNMP_MODELS)
def test_shipped_snmp_profiles_load(name):
    profile = load_profiles(SHIPPED)[name]
    assert isinstance(profile, SnmpProfile)
    assert profile.name == name
    assert profile.required_fields


def test_hilink_files_are_dispatched_to_the_hilink_schema():
    profile = load_profiles(SHIPPED)["huawei-hilink"]
    assert isinstance(profile, HilinkProfile)


def test_an_operator_adds_a_model_with_a_yaml_file(tmp_path):
    write(tmp_path, "peplink-max", GOOD.replace("9.1", "23695.200.1.12.1.1.1"))
    profile = load_profiles(tmp_path)["peplink-max"]
    assert isinstance(profile, SnmpProfile)
    assert profile.fields["sinr_db"].scale == 0.1
    assert profile.fields["imei"].counter == "auto"
    assert profile.fields["imei"].clock is UptimeClock.DEVICE


def test_every_problem_of_every_file_is_reported_with_file_and_key_path(tmp_path):
    bad_scale = write(tmp_path, "a", GOOD.replace("scale: 0.1", "scale: tenths"))
    bad_oid = write(tmp_path, "b", GOOD.replace("1.3.6.1.4.1.9.1.3", "iso.org.dod"))
    bad_key = write(tmp_path, "c", GOOD + "colour: blue\n")
    bad_field = write(tmp_path, "d", GOOD.replace("imei:", "imie:"))
    problems = problems_of(tmp_path)
    assert f"{bad_scale}: fields.sinr_db.scale: must be a number" in problems
    assert any(p.startswith(f"{bad_oid}: fields.imei.oid: must be a numeric OID") for p in problems)
    assert any(p.startswith(f"{bad_key}: colour: unknown key") for p in problems)
    assert any(p.startswith(f"{bad_field}: fields.imie: must be one of") for p in problems)
    assert len(problems) == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: other\n" + GOOD, "x.yaml: name: must match the file name ('x')"),
        (GOOD.replace("protocol: snmp", "protocol: telnet"), "x.yaml: protocol: must be one of"),
        (GOOD.replace("table: modem}", "table: wan}", 1), "x.yaml: fields.imei.table: no table"),
        (GOOD + "required: [iccid]\n", "x.yaml: required: 'iccid' is not under fields"),
        (
            GOOD + "  sim: {oid: 1.3.6.1.2, map: {inserted: fine}}\n",
            "x.yaml: fields.sim.map.inserted: must be one of ready, absent",
        ),
        (
            GOOD.replace("{row: first}", "{row: match, match: '^lte'}"),
            "x.yaml: tables.modem: row: match needs index_column and match",
        ),
        (
            GOOD.replace("{row: first}", "{row: match, index_column: 1.3.6.1.2, match: '('}"),
            "x.yaml: tables.modem.match: is not a valid regular expression",
        ),
        ("protocol: [snmp\n", "x.yaml (line 2, column 1): invalid YAML"),
        ("- just a list\n", "x.yaml: must be a YAML mapping of keys"),
        (GOOD.replace("counter: auto", "") + "  sent: {oid: 1.3.6.1.2, counter: 48bit}\n",
         "x.yaml: fields.sent.counter: must be one of"),
    ],
)  # fmt: skip
def test_problems_are_named_precisely(tmp_path, text, expected):
    write(tmp_path, "x", text)
    problems = problems_of(tmp_path)
    assert any(expected in problem for problem in problems), problems


def test_an_empty_directory_is_a_problem(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_profiles(tmp_path)
    assert caught.value.source == str(tmp_path)
    assert [str(p) for p in caught.value.problems] == ["holds no profile files (*.yaml)"]


@pytest.mark.parametrize("kind", ["counter32", "counter64", "integer32", "device", "auto"])
def test_counter_types_are_accepted(tmp_path, kind):
    write(tmp_path, "x", GOOD + f"  received: {{oid: 1.3.6.1.2, counter: {kind}}}\n")
    spec = load_profiles(tmp_path)["x"].fields["received"]  # type: ignore[union-attr]
    assert spec.counter == (kind if kind == "auto" else CounterType(kind))
