"""The SNMP collector against each model's emulated router, compared with its RouterLife."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.collectors.snmp import SnmpCollector
from monitor.emulator.life import RouterLife
from monitor.emulator.snmp_agent import SnmpFleet
from monitor.model import (
    Endpoint,
    LinkState,
    PollTarget,
    Protocol,
    Sample,
    SimState,
    SnmpCredentials,
)
from monitor.profiles import load_profiles

PROFILES = Path(__file__).parent.parent / "config" / "profiles"
NOW = 1_790_000_000.0
CREDS = SnmpCredentials("2c", community="emulated-community")
MODELS = ["teltonika-rutos7", "teltonika-legacy", "cisco-cellular", "mikrotik-lte", "if-mib"]
HAS_IDENTITY = {"teltonika-rutos7", "cisco-cellular", "mikrotik-lte"}


@pytest.mark.parametrize("model", MODELS)
async def test_sample_matches_the_routers_life(model):
    life = RouterLife.born(
        NOW, router_id=f"emu-{model}", model=model, imei="867098031000017",
        serial="1110843519", iccid="8944100000000000017",
    )  # fmt: skip
    # Past 2^31: Teltonika sends these as negative Integer32; the Sample must hold them unsigned.
    life.received_since_boot = 3_000_000_000
    life.sent_since_boot = 2_459_565_713
    collector = SnmpCollector(load_profiles(PROFILES), clock=lambda: datetime.now(UTC))
    async with SnmpFleet(clock=lambda: NOW) as fleet:
        host, port = await fleet.add(life, model=model, credentials=CREDS)
        target = PollTarget(life.router_id, Endpoint(Protocol.SNMP, host, port, model), CREDS)
        result = await collector.poll(target, 2.0)
        await collector.aclose()
    assert isinstance(result, Sample), result
    assert result.traffic.received is not None, result
    assert result.traffic.received.value == life.received_since_boot
    assert result.traffic.sent is not None
    assert result.traffic.sent.value == life.sent_since_boot
    assert result.link in (LinkState.CONNECTED, LinkState.UNKNOWN)
    if model != "if-mib" and model != "mikrotik-lte":
        assert result.sim is SimState.READY
        assert result.link is LinkState.CONNECTED
    if model in HAS_IDENTITY:
        assert result.identity.imei == life.imei
        assert result.identity.iccid == life.iccid
    if model.startswith("teltonika") or model == "mikrotik-lte":
        assert result.signal.rssi_dbm == life.signal_rssi
