"""The routes that act or reveal: report a router lost or stolen; view a device's passwords.

Every password request, shown or refused, is written to the audit before the answer goes out:
if the audit cannot be written, nothing is shown. Every report of a router lost or stolen, made
or refused, is audited too; a report's audit row is written in the transaction that marks the
device, so no SIM deactivation is set off unaudited.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and the `Caller` alias is local to the function that defines them.
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from monitor.api.auth import Authenticate
from monitor.api.errors import NOT_FOUND, STANDARD, ApiError, ErrorBody, Responses, known_query
from monitor.api.routes import IDENTIFIER, RouterRef, not_found
from monitor.api.schemas import PasswordsOut, ReportLost, ReportLostOut
from monitor.api.sources import StatusSources
from monitor.core.access import Principal, password_decision, report_lost_refusal
from monitor.errors import NotFound, StoreError
from monitor.model import DeviceStatus, Organisation, SupportRequestKind
from monitor.store.access import AuditEntry

FORBIDDEN: Responses = {
    403: {"model": ErrorBody, "description": "this token's role may not do this"}
}
# The guidance: "If you have access ... but cannot view the passwords for some devices, contact
# us and provide the serial numbers for the devices you need to reset."
CONTACT = "To reset this device, contact the programme's support with its serial number."


def device_routes(sources: StatusSources, authenticate: Authenticate) -> APIRouter:
    """POST report-lost and GET passwords."""
    api = APIRouter(prefix="/api/v1", responses=STANDARD, dependencies=[Depends(known_query)])
    Caller = Annotated[Principal, Depends(authenticate)]

    @api.post(
        "/routers/{router}/report-lost",
        tags=["routers"],
        status_code=202,
        response_model=ReportLostOut,
        responses={
            **NOT_FOUND,
            **FORBIDDEN,
            400: {"model": ErrorBody, "description": "the body is not JSON"},
        },
    )
    async def report_lost(
        principal: Caller, router: RouterRef, report: Annotated[ReportLost, Body()]
    ) -> ReportLostOut:
        """Mark a router lost or stolen; the alert engine then raises a deactivate SIM request.
        Every report and every refusal is audited."""
        status = DeviceStatus(report.status)
        what = f"report {status.value}"

        async def audit(serial: str, outcome: str, reason: str) -> None:
            entry = audit_entry(sources, principal, serial, outcome, f"{what}: {reason}")
            await sources.write(sources.access.audit, entry)

        try:
            found = await sources.read(sources.inventory.get_router, router)
        except NotFound:
            # No device is known: the row names what was asked for (a router id or IMEI).
            await audit(router, "not_found", f"no router {router!r}")
            raise not_found(f"router {router!r}") from None
        serial, holder = found.device.serial, found.device.organisation_id
        if not principal.sees(holder):
            await audit(serial, "not_found", f"router {found.id} is {holder}'s")
            raise not_found(f"router {router!r}")
        refusal = report_lost_refusal(principal)
        if refusal is not None:
            await audit(serial, "refused", f"router {found.id}: {refusal}")
            raise ApiError(403, refusal)
        follows = (
            "a deactivate_sim request follows"
            if found.monitored
            else "not monitored: no request follows, the SIM is deactivated by hand"
        )
        reason = f"{what}: router {found.id}; {follows}"
        entry = audit_entry(sources, principal, serial, "reported", reason)
        try:
            device = await sources.write(sources.access.report_status, serial, status, entry)
        except NotFound:  # the device went between the two reads
            await audit(serial, "not_found", f"router {found.id}: its device is gone")
            raise not_found(f"router {router!r}") from None
        seconds = int(sources.follow_up.total_seconds())
        if found.monitored:
            kind: SupportRequestKind | None = SupportRequestKind.DEACTIVATE_SIM
            message = (
                f"Router {found.id} is marked {status.value}. Within about {seconds} s the "
                "monitor raises a deactivate SIM request (quoting its order number and IMEI) "
                "and stops asking for any other support for it."
            )
        else:
            kind = None
            message = (
                f"Router {found.id} is marked {status.value}, but it is not monitored, so no "
                "request is raised automatically: deactivate its SIM in the Support Portal."
            )
        return ReportLostOut(
            router=found.id,
            serial=device.serial,
            device_status=device.status,
            support_request=kind,
            message=message,
        )

    @api.get(
        "/devices/{serial}/passwords",
        tags=["devices"],
        response_model=PasswordsOut,
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    async def passwords(
        principal: Caller,
        serial: Annotated[str, Path(pattern=IDENTIFIER)],
    ) -> PasswordsOut:
        """BIOS and local admin passwords, under the guidance's rules; every request audited."""

        async def audit(outcome: str, reason: str) -> None:
            entry = audit_entry(sources, principal, serial, outcome, reason)
            await sources.write(sources.access.audit, entry)

        try:
            device = await sources.read(sources.inventory.get_device, serial)
        except NotFound:
            await audit("not_found", "no such device")
            raise not_found(f"device {serial!r}") from None
        if not principal.sees(device.organisation_id):
            await audit("not_found", f"the device is {device.organisation_id}'s")
            raise not_found(f"device {serial!r}")
        parent: Organisation | None = None
        try:
            holder = await sources.read(sources.inventory.get_organisation, device.organisation_id)
            if holder.parent_id is not None:
                parent = await sources.read(sources.inventory.get_organisation, holder.parent_id)
        except NotFound as exc:
            # The rules turn on the LA or trust above the device: without it nothing is decided.
            await audit("unavailable", f"the device's organisations are incomplete: {exc}")
            raise ApiError(
                503,
                "this device's passwords cannot be shown: its organisation's record is "
                f"incomplete in the monitor's inventory. {CONTACT}",
            ) from None
        decision = password_decision(principal, device, holder, parent)
        if not decision.allowed:
            await audit("refused", decision.reason)
            raise ApiError(403, f"not allowed by the guidance: {decision.reason}. {CONTACT}")
        if sources.cipher is None:
            await audit("unavailable", "no password key configured")
            raise ApiError(503, "device passwords are not available: no password key is set")
        try:
            found = await sources.read(sources.access.passwords, serial, sources.cipher)
        except StoreError:
            await audit("unavailable", "stored passwords do not decrypt with the key (damaged?)")
            raise ApiError(503, "this device's passwords cannot be read; contact us") from None
        if found is None:
            await audit("not_found", "no passwords stored for the device")
            raise ApiError(404, f"no passwords are stored for device {serial!r}")
        await audit("shown", decision.reason)
        return PasswordsOut(
            serial=serial,
            bios_password=found.bios,
            local_admin_password=found.admin,
            rule=decision.reason,
        )

    return api


def audit_entry(
    sources: StatusSources, principal: Principal, serial: str, outcome: str, reason: str
) -> AuditEntry:
    """An audit row of the principal's request about device `serial`."""
    org = principal.organisation
    return AuditEntry(
        sources.clock(), principal.token_id, principal.name, principal.role.value,
        org.id if org else None, serial, outcome, reason,
    )  # fmt: skip
