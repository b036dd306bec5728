"""The support guidance's advice for a router in each state, as the portal shows it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.core.rules import CAP_ADVICE, CONNECTIVITY_CHECKS
from monitor.model import DeviceStatus, Health

NO_RESET = (
    "Do not attempt to reset the router to try to resolve issues: this will cause both the "
    "router and the SIM to stop working."
)
POWER = (
    "If the router will not start, check that it is fully charged. If it still will not power "
    "up, contact us with the order number and the IMEI number on the device."
)
SIM_BACK = (
    "The router reports no SIM card: ask the user to put the SIM card back into the router and "
    "try to connect again. If the SIM still does not work, the LA or trust can ask for it to be "
    "reactivated in the Support Portal (quote the order number and the IMEI)."
)
UNREADABLE = (
    "The router answers but the monitor cannot read it (login refused or replies it cannot "
    "parse): check the router's management credentials and model profile in the monitor's "
    "configuration. The router itself may be working."
)
LOST = (
    "Reported {status}: its SIM is to be deactivated (a deactivate SIM request is raised "
    "through the Support Portal). No other support is requested for it."
)
WAITING = "Not yet observed long enough to judge; check again after a few polls."


def advice(state: Health, status: DeviceStatus, resets_at: datetime, zone: ZoneInfo) -> list[str]:
    """What to tell the user or the LA/trust about a router in `state`."""
    if status in (DeviceStatus.LOST, DeviceStatus.STOLEN):
        return [LOST.format(status=status.value)]
    if state is Health.CAPPED:
        local = resets_at.astimezone(zone)
        return [CAP_ADVICE, f"This router's allowance resets on {local:%-d %B %Y} at 00:00."]
    if state is Health.UNREACHABLE:
        return [POWER, CONNECTIVITY_CHECKS]
    if state is Health.WAN_DOWN:
        return [CONNECTIVITY_CHECKS]
    if state is Health.SIM_ABSENT:
        return [SIM_BACK, NO_RESET]
    if state is Health.UNREADABLE:
        return [UNREADABLE, NO_RESET]
    if state is Health.UNKNOWN:
        return [WAITING]
    return []
