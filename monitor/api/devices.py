"""The routes that act or reveal: report a router lost or stolen; view a device's passwords.

Every password request, shown or refused, is written to the audit before the answer goes out:
if the audit cannot be written, nothing is shown.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and the `Caller` alias is local to the function that defines them.
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from monitor.api.auth import Authenticate
from monitor.api.errors import NOT_FOUND, STANDARD, ApiError, ErrorBody, Responses, known_query
from monitor.api.routes import IDENTIFIER, RouterRef, not_found, scoped_router
from monitor.api.schemas import PasswordsOut, ReportLost, ReportLostOut
from monitor.api.sources import StatusSources, blocking
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
        """Mark a router lost or stolen; the alert engine then raises a deactivate SIM request."""
        found = await scoped_router(sources, principal, router)
        refusal = report_lost_refusal(principal)
        if refusal is not None:
            raise ApiError(403, refusal)
        status = DeviceStatus(report.status)
        device = await blocking(sources.inventory.set_device_status, found.device.serial, status)
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
            org = principal.organisation
            entry = AuditEntry(
                sources.clock(), principal.token_id, principal.name, principal.role.value,
                org.id if org else None, serial, outcome, reason,
            )  # fmt: skip
            await blocking(sources.access.audit, entry)

        try:
            device = await blocking(sources.inventory.get_device, serial)
        except NotFound:
            await audit("not_found", "no such device")
            raise not_found(f"device {serial!r}") from None
        if not principal.sees(device.organisation_id):
            await audit("not_found", f"the device is {device.organisation_id}'s")
            raise not_found(f"device {serial!r}")
        holder = await blocking(sources.inventory.get_organisation, device.organisation_id)
        parent: Organisation | None = None
        if holder.parent_id is not None:
            parent = await blocking(sources.inventory.get_organisation, holder.parent_id)
        decision = password_decision(principal, device, holder, parent)
        if not decision.allowed:
            await audit("refused", decision.reason)
            raise ApiError(403, f"not allowed by the guidance: {decision.reason}. {CONTACT}")
        if sources.cipher is None:
            await audit("unavailable", "no password key configured")
            raise ApiError(503, "device passwords are not available: no password key is set")
        try:
            found = await blocking(sources.access.passwords, serial, sources.cipher)
        except StoreError:
            await audit("unavailable", "stored passwords do not decrypt with the key")
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
