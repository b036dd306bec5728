"""Device passwords through the HTTP API: the guidance's rules case by case, every request audited,
the passwords encrypted at rest under a key that is never stored, logged or echoed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from test_api_tenants import VISIBLE, World, build_world

from monitor.core.access import Role
from monitor.errors import NotFound, StoreError
from monitor.model import Allocation, Device, DeviceKind, Organisation
from monitor.store import Inventory
from monitor.store.access import PasswordCipher

SOCIAL, SCHOOLS = Allocation.SOCIAL_CARE, Allocation.SCHOOLS
LAPTOP, TABLET = DeviceKind.WINDOWS_LAPTOP, DeviceKind.WINDOWS_TABLET
KEY = PasswordCipher.new_key()

# serial: (organisation, allocation, order term)
DEVICES = {
    "W-LA1-SOCIAL": ("la-1", SOCIAL, "2020-summer"),
    "W-LA1-SCHOOLS": ("la-1", SCHOOLS, "2020-summer"),
    "W-SCH-LA1": ("school-la1", SCHOOLS, "2020-summer"),
    "W-SCH-LA1-SOCIAL": ("school-la1", SOCIAL, "2020-summer"),
    "W-COL-LA1": ("college-la1", SCHOOLS, "2020-summer"),
    "W-LA1-UNKNOWN": ("la-1", None, "2020-summer"),
    "W-T1": ("trust-1", None, "2020-summer"),
    "W-SCH-T1": ("school-t1", SCHOOLS, "2020-summer"),
    "W-SOLO-SUMMER": ("school-solo", None, "2020-summer"),
    "W-LA1-AUTUMN": ("la-1", SCHOOLS, "2020-autumn"),
    "W-SCH-LA1-2021": ("school-la1", None, "2021-spring"),
    "W-T1-AUTUMN": ("trust-1", None, "2020-autumn"),
    "W-SCH-T1-AUTUMN": ("school-t1", None, "2021-autumn"),
    "W-SOLO-AUTUMN": ("school-solo", None, "2020-autumn"),
    "W-LA1-NOTERM": ("la-1", SCHOOLS, None),
    "W-LA1-SPRING": ("la-1", SOCIAL, "2020-spring"),
}
# Who may see each device's passwords (role, organisation), per the guidance; everyone else who
# sees the device is refused (403), and everyone who does not answers 404.
ALLOWED: dict[str, set[tuple[Role, str]]] = {
    "W-LA1-SOCIAL": {(Role.LA_USER, "la-1")},
    "W-LA1-SCHOOLS": {(Role.LA_USER, "la-1")},
    "W-SCH-LA1": {(Role.LA_USER, "la-1"), (Role.SCHOOL_TECHNICAL_CONTACT, "school-la1")},
    "W-SCH-LA1-SOCIAL": {(Role.LA_USER, "la-1")},
    "W-COL-LA1": {(Role.LA_USER, "la-1"), (Role.SCHOOL_TECHNICAL_CONTACT, "college-la1")},
    "W-LA1-UNKNOWN": set(),
    "W-T1": {(Role.TRUST_USER, "trust-1")},
    "W-SCH-T1": {(Role.TRUST_USER, "trust-1")},
    "W-SOLO-SUMMER": set(),
    "W-LA1-AUTUMN": {(Role.NOMINATED_ORDERER, "la-1")},
    "W-SCH-LA1-2021": {(Role.NOMINATED_ORDERER, "school-la1")},
    "W-T1-AUTUMN": {(Role.NOMINATED_ORDERER, "trust-1")},
    "W-SCH-T1-AUTUMN": {(Role.NOMINATED_ORDERER, "school-t1")},
    "W-SOLO-AUTUMN": {(Role.NOMINATED_ORDERER, "school-solo")},
    "W-LA1-NOTERM": set(),
    "W-LA1-SPRING": set(),
}


def bios_of(serial: str) -> str:
    return f"Bios!{serial.lower()}#7"


def admin_of(serial: str) -> str:
    return f"Adm1n-{serial.lower()}"


@pytest.fixture
def world(migrated: Engine) -> Iterator[World]:
    cipher = PasswordCipher.from_text(KEY)
    made = build_world(migrated, cipher)
    devices = [
        Device(serial, LAPTOP if i % 2 else TABLET, org, f"ORD-{serial}", None, alloc, term)
        for i, (serial, (org, alloc, term)) in enumerate(DEVICES.items())
    ]
    Inventory(migrated).upsert_devices(devices)
    assert cipher is not None
    made.sources.access.store_passwords(
        [(serial, bios_of(serial), admin_of(serial)) for serial in DEVICES], cipher
    )
    with made.client:
        yield made


def test_password_rules_case_by_case_with_audit(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    access = world.sources.access
    wrong = []
    expected_audit = []
    for serial, (org, _, _) in DEVICES.items():
        for caller in world.callers:
            answer = world.client.get(f"/api/v1/devices/{serial}/passwords", headers=caller.headers)
            assert answer.headers["cache-control"] == "no-store"
            if org not in VISIBLE[caller.organisation]:
                expected, outcome = 404, "not_found"
            elif (caller.role, caller.organisation) in ALLOWED[serial]:
                expected, outcome = 200, "shown"
            else:
                expected, outcome = 403, "refused"
            if answer.status_code != expected:
                wrong.append((serial, caller.role.value, caller.organisation, answer.status_code))
                continue
            body = answer.json()
            if expected == 200:
                assert body["bios_password"] == bios_of(serial)
                assert body["local_admin_password"] == admin_of(serial)
                assert body["rule"]
            else:
                assert bios_of(serial) not in answer.text
                assert admin_of(serial) not in answer.text
                assert body["error"] == ("not_found" if expected == 404 else "forbidden")
            if expected == 403:
                assert "serial number" in body["message"]
            expected_audit.append((caller.token_id, caller.organisation, serial, outcome))
    assert wrong == []
    audit = access.audit_log()
    assert [(a.token_id, a.organisation_id, a.device_serial, a.outcome) for a in audit] == (
        expected_audit
    )
    assert all(a.reason and a.who and a.role for a in audit)
    shown = [a for a in audit if a.outcome == "shown"]
    assert len(shown) == sum(len(who) for who in ALLOWED.values())
    for serial in DEVICES:
        assert bios_of(serial) not in caplog.text
        assert admin_of(serial) not in caplog.text
    assert KEY not in caplog.text


def test_refusal_reasons_are_audited(world: World) -> None:
    contact = world.caller(Role.SCHOOL_TECHNICAL_CONTACT, "school-la1")
    answer = world.client.get("/api/v1/devices/W-SCH-LA1-SOCIAL/passwords", headers=contact.headers)
    assert answer.status_code == 403
    assert "for social care: only LA users may view" in answer.json()["message"]
    [entry] = world.sources.access.audit_log("W-SCH-LA1-SOCIAL")
    assert entry.outcome == "refused"
    assert entry.who == "school_technical_contact at school-la1"
    assert entry.role == "school_technical_contact"
    assert (
        entry.reason
        == "summer 2020 device given to LA la-1 for social care: only LA users may view"
    )


def test_unknown_device_and_device_without_passwords(world: World) -> None:
    la_user = world.caller(Role.LA_USER, "la-1")
    missing = world.client.get("/api/v1/devices/NOPE/passwords", headers=la_user.headers)
    assert missing.status_code == 404
    Inventory(world.engine).upsert_devices(
        [Device("W-BARE", LAPTOP, "la-1", "ORD-9", None, SOCIAL, "2020-summer")]
    )
    bare = world.client.get("/api/v1/devices/W-BARE/passwords", headers=la_user.headers)
    assert bare.status_code == 404
    assert "no passwords are stored" in bare.json()["message"]
    outcomes = [(a.device_serial, a.outcome) for a in world.sources.access.audit_log()]
    assert outcomes == [("NOPE", "not_found"), ("W-BARE", "not_found")]


def test_without_a_key_nothing_is_shown_and_that_is_audited(migrated: Engine) -> None:
    made = build_world(migrated, cipher=None)
    Inventory(migrated).upsert_devices(
        [Device("W-1", LAPTOP, "la-1", "ORD-9", None, SOCIAL, "2020-summer")]
    )
    la_user = made.caller(Role.LA_USER, "la-1")
    with made.client:
        answer = made.client.get("/api/v1/devices/W-1/passwords", headers=la_user.headers)
    assert answer.status_code == 503
    assert [a.outcome for a in made.sources.access.audit_log()] == ["unavailable"]


def test_passwords_are_encrypted_at_rest_and_bound_to_their_device(world: World) -> None:
    with world.engine.connect() as connection:
        rows = connection.execute(text("SELECT serial, key_id, bios, admin FROM device_passwords"))
        stored = {serial: (key_id, bios, admin) for serial, key_id, bios, admin in rows}
    assert set(stored) == set(DEVICES)
    dump = repr(stored)
    for serial in DEVICES:
        assert bios_of(serial) not in dump
        assert admin_of(serial) not in dump
    assert KEY not in dump
    # Moving one device's ciphertext onto another does not make it readable there.
    first, second = "W-LA1-SOCIAL", "W-LA1-SCHOOLS"
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE device_passwords SET bios = :bios WHERE serial = :serial"),
            {"bios": stored[first][1], "serial": second},
        )
    la_user = world.caller(Role.LA_USER, "la-1")
    answer = world.client.get(f"/api/v1/devices/{second}/passwords", headers=la_user.headers)
    assert answer.status_code == 503
    assert world.sources.access.audit_log(second)[-1].outcome == "unavailable"


def test_another_key_cannot_read_them(world: World) -> None:
    other = PasswordCipher.from_text(PasswordCipher.new_key())
    assert other is not None
    with pytest.raises(Exception, match="another key"):
        world.sources.access.passwords("W-T1", other)
    assert KEY not in repr(world.sources.cipher)


@pytest.mark.parametrize(
    "damaged",
    ["!!not base64!!", "c2hvcnQ=", ""],  # not base64; base64 of 5 bytes; nothing
)
def test_damaged_ciphertext_answers_503_json_and_is_audited(world: World, damaged: str) -> None:
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE device_passwords SET admin = :admin WHERE serial = 'W-LA1-SOCIAL'"),
            {"admin": damaged},
        )
    la_user = world.caller(Role.LA_USER, "la-1")
    answer = world.client.get("/api/v1/devices/W-LA1-SOCIAL/passwords", headers=la_user.headers)
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "unavailable",
        "message": "this device's passwords cannot be read; contact us",
    }
    assert bios_of("W-LA1-SOCIAL") not in answer.text
    [entry] = world.sources.access.audit_log("W-LA1-SOCIAL")
    assert (entry.outcome, entry.token_id) == ("unavailable", la_user.token_id)
    assert "do not decrypt" in entry.reason


def test_missing_parent_organisation_answers_503_json_and_is_audited(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rules turn on the LA above the school; here the inventory cannot say who that is.
    inventory = world.sources.inventory
    real = inventory.get_organisation

    def without_la(organisation_id: str) -> Organisation:
        if organisation_id == "la-1":
            raise NotFound("no organisation 'la-1'")
        return real(organisation_id)

    monkeypatch.setattr(inventory, "get_organisation", without_la)
    contact = world.caller(Role.SCHOOL_TECHNICAL_CONTACT, "school-la1")
    answer = world.client.get("/api/v1/devices/W-SCH-LA1/passwords", headers=contact.headers)
    assert answer.status_code == 503
    body = answer.json()
    assert body["error"] == "unavailable"
    assert "organisation's record is incomplete" in body["message"]
    assert "database" not in body["message"]
    assert "serial number" in body["message"]
    [entry] = world.sources.access.audit_log("W-SCH-LA1")
    assert (entry.outcome, entry.organisation_id) == ("unavailable", "school-la1")
    assert entry.reason == "the device's organisations are incomplete: no organisation 'la-1'"


def test_decrypt_refuses_damaged_text_with_a_store_error() -> None:
    cipher = PasswordCipher.from_text(KEY)
    assert cipher is not None
    sealed = cipher.encrypt("W-1", "bios", "secret-1")
    assert cipher.decrypt("W-1", "bios", sealed) == "secret-1"
    for damaged in ("%%%", sealed[:10], sealed + "A", "é", ""):
        with pytest.raises(StoreError, match="does not decrypt"):
            cipher.decrypt("W-1", "bios", damaged)
