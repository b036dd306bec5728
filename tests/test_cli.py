"""The `monitor` command's import and db subcommands, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": database_url}}), encoding="utf-8")
    return path


def monitor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )


def test_import_example_files_then_again(config: Path, tmp_path: Path) -> None:
    orgs = monitor(
        "import", "organisations", str(CONFIG / "organisations.example.csv"), "--config",
        str(config), cwd=tmp_path,
    )  # fmt: skip
    assert orgs.returncode == 0, orgs.stderr
    assert "6 created, 0 updated, 0 unchanged" in orgs.stdout
    devices = ["import", "devices", str(CONFIG / "devices.example.csv"), "--config", str(config)]
    first = monitor(*devices, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "7 created, 0 updated, 0 unchanged" in first.stdout
    again = monitor(*devices, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 created, 0 updated, 7 unchanged" in again.stdout


def test_bad_csv_exits_2_listing_rows_and_stores_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "orgs.csv"
    bad.write_text(
        "id,name,kind,parent\nla-1,LA,local_authority,\ns-1,,school,la-1\ns-2,S,shop,\n",
        encoding="utf-8",
    )
    assert main(["import", "organisations", str(bad), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "line 3, column name" in err
    assert "line 4, column kind" in err
    assert main(["db", "current", "--config", str(config)]) == 0
    good = tmp_path / "good.csv"
    good.write_text("id,name,kind,parent\nla-2,LA 2,local_authority,\n", encoding="utf-8")
    assert main(["import", "organisations", str(good), "--config", str(config)]) == 0
    assert "1 created, 0 updated, 0 unchanged" in capsys.readouterr().out  # la-1 was not kept


def test_missing_file_exits_2(config: Path, tmp_path: Path) -> None:
    done = monitor("import", "devices", str(tmp_path / "nope.csv"), "--config", str(config),
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert "cannot read" in done.stderr
    assert "No such file" in done.stderr


def test_db_upgrade_and_current(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--config", str(config)]) == 1
    assert "needs `monitor db upgrade`" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert "database schema at revision" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(config)]) == 0  # already there: a no-op
    assert main(["db", "current", "--config", str(config)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_unreachable_database_exits_1_without_the_password(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    url = "postgresql://monitor:pa55word@127.0.0.1:1/nowhere"
    config.write_text(yaml.safe_dump({"database": {"url": url}}), encoding="utf-8")
    done = monitor("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot connect to database" in done.stderr
    assert "pa55word" not in done.stderr
