"""`monitor token create/list/revoke` and `monitor import passwords`: secrets shown once, stored
hashed or encrypted, never printed again; tokens made on the command line work on the API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text
from test_api_tenants import ORGANISATIONS, World, build_world

from monitor.api import create_api
from monitor.cli import main
from monitor.model import Allocation, Device, DeviceKind
from monitor.store import Inventory
from monitor.store.access import AccessStore, PasswordCipher


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": database_url}}), encoding="utf-8")
    return path


@pytest.fixture
def world(migrated: Engine) -> World:
    return build_world(migrated)


def test_token_create_list_revoke(
    world: World, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["token", "create", "--organisation", "trust-1", "--role", "trust_user"]
    assert main([*args, "--name", "Jo at Trust One", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("rmt_")
    assert len(secret) > 40
    assert "shown only now" in err
    assert secret not in err

    with world.engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(text("SELECT * FROM api_tokens"))]
    assert secret not in repr(rows)

    with world.client:
        answer = world.client.get("/api/v1/routers", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 200
        assert {i["organisation"] for i in answer.json()["items"]} == {"trust-1", "school-t1"}

        assert main(["token", "list", "--config", str(config)]) == 0
        listing = capsys.readouterr().out
        [line] = [line for line in listing.splitlines() if "Jo at Trust One" in line]
        token_id = line.split()[0]
        assert "trust_user" in line
        assert "valid" in line
        assert secret not in listing

        assert main(["token", "revoke", token_id, "--config", str(config)]) == 0
        assert main(["token", "revoke", token_id, "--config", str(config)]) == 1

    # A running API trusts a valid token for TOKEN_SECONDS (test_api_tenants shows it ends);
    # a daemon (re)started after the revocation refuses it at once.
    async def ready() -> tuple[bool, dict[str, str]]:
        return True, {}

    with TestClient(create_api(ready, CollectorRegistry(), str, world.sources)) as client:
        answer = client.get("/api/v1/routers", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 401
    assert main(["token", "list", "--config", str(config)]) == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--organisation", "trust-1", "--role", "la_user"], 2, "belongs to a local_authority"),
        (["--organisation", "la-1", "--role", "programme"], 2, "belongs to no organisation"),
        (["--role", "nominated_orderer"], 2, "needs an organisation"),
        (["--organisation", "school-la1", "--role", "trust_user"], 2, "academy_trust"),
        (["--organisation", "nowhere", "--role", "la_user"], 1, "no organisation 'nowhere'"),
    ],
)
def test_token_create_refuses_what_the_roles_do_not_allow(
    world: World,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    says: str,
) -> None:
    assert main(["token", "create", *args, "--config", str(config)]) == code
    captured = capsys.readouterr()
    assert says in captured.err
    assert "rmt_" not in captured.out
    assert len(AccessStore(world.engine).list_tokens()) == len(world.callers)  # none made


def test_token_create_for_the_programme(
    world: World, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "--role", "programme", "--config", str(config)]) == 0
    secret = capsys.readouterr().out.strip()
    with world.client:
        answer = world.client.get("/api/v1/routers", headers={"Authorization": f"Bearer {secret}"})
    assert answer.json()["total"] == len(ORGANISATIONS)


def test_import_passwords(
    world: World,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = PasswordCipher.new_key()
    Inventory(world.engine).upsert_devices(
        [
            Device("W-1", DeviceKind.WINDOWS_LAPTOP, "la-1", "O1", None, Allocation.SOCIAL_CARE,
                   "2020-summer"),
            Device("W-2", DeviceKind.WINDOWS_TABLET, "la-1", "O2", None, None, "2020-autumn"),
        ]
    )  # fmt: skip
    path = tmp_path / "passwords.csv"
    bad = "serial,bios_password,admin_password\nW-1,b-secret-1,\ns-la-1,b-secret-2,a-secret-2\n"
    path.write_text(bad, encoding="utf-8")

    monkeypatch.delenv("MONITOR_PASSWORD_KEY", raising=False)
    monkeypatch.delenv("MONITOR_PASSWORD_KEY_FILE", raising=False)
    assert main(["import", "passwords", str(path), "--config", str(config)]) == 2
    assert "MONITOR_PASSWORD_KEY" in capsys.readouterr().err

    key_file = tmp_path / "password.key"
    key_file.write_text(key + "\n", encoding="ascii")
    monkeypatch.setenv("MONITOR_PASSWORD_KEY_FILE", str(key_file))
    assert main(["import", "passwords", str(path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "line 2, column admin_password" in err
    assert "b-secret" not in err

    path.write_text(bad.replace("W-1,b-secret-1,", "W-1,b-secret-1,a-secret-1"), encoding="utf-8")
    assert main(["import", "passwords", str(path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "line 3, column serial: no Windows laptop or tablet" in err
    assert "secret" not in err

    good = "serial,bios_password,admin_password\nW-1,b-secret-1,a-secret-1\nW-2,b2,a2\n"
    path.write_text(good, encoding="utf-8")
    assert main(["import", "passwords", str(path), "--config", str(config)]) == 0
    assert "2 stored, 0 replaced" in capsys.readouterr().out
    assert main(["import", "passwords", str(path), "--config", str(config)]) == 0
    assert "0 stored, 2 replaced" in capsys.readouterr().out

    cipher = PasswordCipher.from_text(key)
    assert cipher is not None
    stored = AccessStore(world.engine).passwords("W-1", cipher)
    assert stored is not None
    assert (stored.bios, stored.admin) == ("b-secret-1", "a-secret-1")
    assert "secret" not in repr(stored)

    monkeypatch.setenv("MONITOR_PASSWORD_KEY", "not-a-key")
    assert main(["import", "passwords", str(path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "MONITOR_PASSWORD_KEY: must be 32 random bytes" in err
    assert "not-a-key" not in err
